"""Progress: a live bar per epoch in a terminal; elsewhere (CI, pipes, files) exactly one
Keras-like line per epoch and nothing per step.

    Epoch 3/5 - 1875/1875 - 12s 6ms/step - loss: 0.2446 - accuracy: 0.9086 - val_loss: 0.2811 - val_accuracy: 0.8987
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["Progress", "format_logs"]


def format_logs(logs: dict[str, float]) -> str:
    shown = {key: value for key, value in logs.items() if key != "learning_rate"}
    return " - ".join(f"{key}: {value:.4f}" for key, value in shown.items())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"


class Progress:
    """verbose: 0 silent, 1 a bar in terminals (a line elsewhere), 2 one line per epoch.
    muted: not even warnings (the processes of a distributed run but the first, which speaks for all)."""

    def __init__(self, verbose: int | str = "auto", stream: TextIO | None = None, muted: bool = False) -> None:
        self.muted = muted
        self.stream = stream or sys.stdout
        if verbose == "auto":
            verbose = 1
        self.verbose = int(verbose)
        self.live = self.verbose == 1 and self.stream.isatty()
        self._bar: Any = None
        self._task: Any = None

    def epoch_begin(self, epoch: int, epochs: int, steps: int | None) -> None:
        self.title = f"Epoch {epoch + 1}/{epochs}"
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                self.title,
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                "{task.fields[logs]}",
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=steps, logs="")

    def batch_end(self, step: int, logs: dict[str, float] | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, logs=format_logs(logs) if logs else "")

    def epoch_end(self, steps: int, seconds: float, logs: dict[str, float]) -> None:
        self._stop_bar()
        if self.verbose:
            per_step = _duration(seconds / max(steps, 1)).replace("s", "s/step")
            line = f"{self.title} - {steps}/{steps} - {_duration(seconds)} {per_step} - {format_logs(logs)}"
            print(line, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """A line of information (shown unless verbose=0)."""
        self._stop_bar()
        if self.verbose:
            print(text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """Why training stopped early: always shown (unless muted), on stderr."""
        self._stop_bar()
        if not self.muted:
            print(text, file=sys.stderr, flush=True)

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
