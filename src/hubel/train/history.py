"""History: what fit() returns, with Keras's keys (loss, accuracy, val_loss, val_accuracy,
learning_rate), one value per epoch.

    history = model.fit(...)
    history.history["val_accuracy"]
    both = history + model.fit(..., initial_epoch=5)   # continued training, one curve
"""

from __future__ import annotations

from typing import Any

__all__ = ["History"]


class History:
    """Per-epoch logs of one or more fit() calls."""

    def __init__(
        self,
        history: dict[str, list[float]] | None = None,
        epoch: list[int] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.history: dict[str, list[float]] = {key: list(values) for key, values in (history or {}).items()}
        self.epoch: list[int] = list(epoch or [])
        self.params: dict[str, Any] = dict(params or {})

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's logs; a key first seen late is padded with NaN for earlier epochs."""
        for key in logs:
            self.history.setdefault(key, [float("nan")] * len(self.epoch))
        self.epoch.append(epoch)
        for key, values in self.history.items():
            values.append(float(logs.get(key, float("nan"))))

    def __add__(self, other: History) -> History:
        """The two runs as one: `first + second` (continued training)."""
        combined = History(self.history, self.epoch, {**self.params, **other.params})
        combined.params["seconds"] = self.params.get("seconds", 0.0) + other.params.get("seconds", 0.0)
        for index, epoch in enumerate(other.epoch):
            combined.append(epoch, {key: values[index] for key, values in other.history.items()})
        return combined

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epoch": self.epoch, "params": self.params}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(data.get("history"), data.get("epoch"), data.get("params"))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
