"""History: what fit() returns, with Keras's keys (loss, accuracy, val_loss, val_accuracy,
learning_rate), one value per epoch; and `steps`, the training loss, metrics and learning rate
of every step (each batch's own values, not the epoch's running mean), for the curves of short
runs, where one dot per epoch says little.

    history = model.fit(...)
    history.history["val_accuracy"]
    both = history + model.fit(..., initial_epoch=5)   # continued training, one curve
"""

from __future__ import annotations

from typing import Any

__all__ = ["STEP_CURVES_UP_TO", "History"]

STEP_CURVES_UP_TO = 5  # epochs: runs this short have their training curves drawn per step


class History:
    """Per-epoch logs of one or more fit() calls."""

    def __init__(
        self,
        history: dict[str, list[float]] | None = None,
        epoch: list[int] | None = None,
        params: dict[str, Any] | None = None,
        steps: dict[str, list[float]] | None = None,
    ) -> None:
        self.history: dict[str, list[float]] = {key: list(values) for key, values in (history or {}).items()}
        self.epoch: list[int] = list(epoch or [])
        self.params: dict[str, Any] = dict(params or {})
        # per step: "epoch" (fractional: epoch + steps done / steps per epoch), "loss", each metric,
        # "learning_rate"
        self.steps: dict[str, list[float]] = {key: list(values) for key, values in (steps or {}).items()}

    def append_steps(self, epoch: int, steps_per_epoch: int, first_step: int, values: dict[str, list[float]]) -> None:
        """Record the steps of one epoch, from step `first_step` of it (a resumed epoch starts
        part-way); `values` holds one list per key, one value per step."""
        count = len(next(iter(values.values()), []))
        positions = [epoch + (first_step + i + 1) / max(steps_per_epoch, 1) for i in range(count)]
        for key in ("epoch", *values):
            self.steps.setdefault(key, [float("nan")] * (len(self.steps.get("epoch", []))))
        self.steps["epoch"] += positions
        for key, column in self.steps.items():
            if key != "epoch":
                column += list(values.get(key, [float("nan")] * count))

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's logs; a key first seen late is padded with NaN for earlier epochs."""
        for key in logs:
            self.history.setdefault(key, [float("nan")] * len(self.epoch))
        self.epoch.append(epoch)
        for key, values in self.history.items():
            values.append(float(logs.get(key, float("nan"))))

    def __add__(self, other: History) -> History:
        """The two runs as one: `first + second` (continued training)."""
        combined = History(self.history, self.epoch, {**self.params, **other.params}, self.steps)
        for key, column in other.steps.items():
            combined.steps.setdefault(key, [float("nan")] * len(self.steps.get("epoch", [])))
            combined.steps[key] += column
        combined.params["seconds"] = self.params.get("seconds", 0.0) + other.params.get("seconds", 0.0)
        for index, epoch in enumerate(other.epoch):
            combined.append(epoch, {key: values[index] for key, values in other.history.items()})
        return combined

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epoch": self.epoch, "params": self.params, "steps": self.steps}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(data.get("history"), data.get("epoch"), data.get("params"), data.get("steps"))

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"
