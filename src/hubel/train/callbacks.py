"""Callbacks: code that runs around every phase of fit().

A callback overrides the hooks it needs; the engine calls them with `logs` (a dict of the
numbers so far). `callback.trainer` is set before training starts, so a callback can read or
change `trainer.model`, `trainer.optimizer.learning_rate` or set `trainer.stop_training`.
`callback.params` holds fit's "epochs", "steps" (per epoch) and "batch_size", as in Keras; a
callback that changes params["epochs"] moves the end of fit (and the progress bar's count).
An exception in a hook is re-raised naming the callback and the hook.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hubel.errors import ConfigError, HubelError
from hubel.train.optimizers import weight_matches, weight_names

if TYPE_CHECKING:
    from hubel.train.trainer import Trainer

__all__ = [
    "CSVLogger",
    "Callback",
    "CallbackError",
    "CallbackList",
    "EarlyStopping",
    "FreezeWeights",
    "JSONLinesLogger",
    "LearningRateScheduler",
    "Lookahead",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TrainingBudget",
]

Logs = dict[str, float]


class CallbackError(HubelError):
    """A callback failed; the message names the callback and the hook."""


class Callback:
    """Base class: every hook is a no-op. In a distributed fit callbacks run in every process,
    except those that write files (writes_files = True), which run in process 0 alone.

    As in Keras, `self.model` is the model being trained (`self.model.stop_training = True` ends
    fit) and `self.params` fit's settings; a batch hook may be written as on_train_batch_end or
    as its older name on_batch_end.
    """

    trainer: Trainer
    model: Any  # the module fit trains: the Model, for a hubel model (set with trainer)
    params: dict[str, Any]  # fit's epochs, steps per epoch and batch size (set with trainer)
    writes_files = False

    def on_train_begin(self, logs: Logs) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs) -> None:
        """After the last epoch (also after an early stop)."""

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        """Before each epoch (epochs count from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        """After each epoch, with the epoch's loss, metrics and validation numbers."""

    def on_batch_begin(self, batch: int, logs: Logs) -> None:
        """Before each training batch."""

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        """After each training batch."""

    def on_train_batch_begin(self, batch: int, logs: Logs) -> None:
        """Before each training batch (Keras's name; by default, on_batch_begin)."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs) -> None:
        """After each training batch (Keras's name; by default, on_batch_end)."""
        self.on_batch_end(batch, logs)


class CallbackList:
    """Calls a hook on every callback; a failure names the callback and the hook."""

    def __init__(
        self, callbacks: Sequence[Callback], trainer: Trainer, main: bool = True, params: dict[str, Any] | None = None
    ) -> None:
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise ConfigError(f"expected hubel Callback objects in `callbacks`. Received: {callback!r}")
            callback.trainer, callback.model = trainer, trainer.model
            callback.params = params if params is not None else {}
        # main: this process writes the run's files (the only one, or process 0 of several)
        self.callbacks = [callback for callback in callbacks if main or not callback.writes_files]

    def call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            try:
                getattr(callback, hook)(*args)
            except HubelError:
                raise
            except Exception as error:
                raise CallbackError(f"callback {type(callback).__name__} failed in {hook}: {error!r}") from error


def _monitor_mode(monitor: str, mode: str) -> Callable[[float, float], bool]:
    """better(current, best) for the monitored quantity."""
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"expected `mode` to be one of 'auto', 'min', 'max'. Received: mode={mode!r}")
    if mode == "auto":
        mode = "max" if any(word in monitor for word in ("acc", "auc", "precision", "recall", "f1")) else "min"
    return (lambda current, best: current > best) if mode == "max" else (lambda current, best: current < best)


class TrainingBudget(Callback):
    """Stop after `steps` training steps, or once `seconds` have passed since training began,
    whichever comes first: at the end of a step, so that epoch still validates and logs (as a
    callback's stop_training does in Keras). `stopped_by` says which limit stopped it, if any.

    Example:
        >>> TrainingBudget(steps=500, seconds=60).steps
        500
    """

    def __init__(self, steps: int | None = None, seconds: float | None = None) -> None:
        if steps is None and seconds is None:
            raise ConfigError("TrainingBudget: give steps, seconds or both.")
        if (steps is not None and steps < 1) or (seconds is not None and not seconds > 0):
            raise ConfigError(f"TrainingBudget: steps and seconds must be positive. Received: {steps=}, {seconds=}")
        self.steps, self.seconds = steps, seconds
        self.taken, self.stopped_by, self._started = 0, None, 0.0

    def on_train_begin(self, logs: Logs) -> None:
        self.taken, self.stopped_by, self._started = 0, None, time.perf_counter()

    def on_batch_end(self, batch: int, logs: Logs) -> None:
        self.taken += 1
        if self.steps is not None and self.taken >= self.steps:
            self.stopped_by = "steps"
        elif self.seconds is not None and time.perf_counter() - self._started >= self.seconds:
            self.stopped_by = "seconds"
        if self.stopped_by is not None:
            self.trainer.stop_training = True


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        self.monitor = monitor
        self.better = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.best = math.nan

    def improved(self, logs: Logs) -> bool | None:
        """True/False, or None when the monitored value is missing from the logs."""
        current = logs.get(self.monitor)
        if current is None or math.isnan(current):
            return None
        if math.isnan(self.best):
            return True
        delta = self.min_delta if self.better(1.0, 0.0) else -self.min_delta
        return self.better(current - delta, self.best)

    def missing(self, logs: Logs) -> str:
        return f"{type(self).__name__} monitors {self.monitor!r}, which is not in the logs {sorted(logs)}"


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by min_delta for `patience` epochs.

    restore_best_weights=True puts back the best epoch's weights when training ends — also
    when it ends without the stop triggering (unlike Keras).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience, self.restore_best_weights, self.start_from_epoch = (
            patience,
            restore_best_weights,
            start_from_epoch,
        )
        self.wait, self.best_weights, self.best_epoch, self.stopped_epoch = 0, None, -1, -1

    def on_train_begin(self, logs: Logs) -> None:
        self.wait, self.best, self.best_weights, self.best_epoch, self.stopped_epoch = 0, math.nan, None, -1, -1

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        improved = self.improved(logs)
        if improved is None:
            raise ConfigError(self.missing(logs))
        if epoch < self.start_from_epoch:
            return
        if improved:
            self.best, self.best_epoch, self.wait = logs[self.monitor], epoch, 0
            if self.restore_best_weights:
                self.best_weights = copy.deepcopy(self.trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience and epoch > 0:  # Keras: patience epochs without improvement
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: Logs) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model after every epoch, or only when `monitor` improves (save_best_only).

    filepath may contain {epoch} and any log key: "best-{epoch:02d}-{val_accuracy:.3f}.hubel".
    Models with a .save(path) method (Sequential) are saved as .hubel files; other torch
    modules as their state_dict.
    """

    writes_files = True

    def __init__(
        self, filepath: str | Path, monitor: str = "val_loss", save_best_only: bool = False, mode: str = "auto"
    ) -> None:
        super().__init__(monitor, mode, 0.0)
        self.filepath, self.save_best_only = str(filepath), save_best_only
        self.saved: list[Path] = []

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.save_best_only:
            improved = self.improved(logs)
            if improved is None:
                raise ConfigError(self.missing(logs))
            if not improved:
                return
            self.best = logs[self.monitor]
        path = Path(self.filepath.format(epoch=epoch + 1, **logs))
        model = self.trainer.model
        if hasattr(model, "save"):
            model.save(path)
        else:
            import torch

            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
        self.saved.append(path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if not 0 < factor < 1:
            raise ConfigError(f"ReduceLROnPlateau: expected 0 < factor < 1. Received: factor={factor!r}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.cooldown, self.min_lr = factor, patience, cooldown, min_lr
        self.wait = self.cooldown_left = 0

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        improved = self.improved(logs)
        if improved is None:
            raise ConfigError(self.missing(logs))
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if improved:
            self.best, self.wait = logs[self.monitor], 0
        elif self.cooldown_left == 0:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.trainer.optimizer
                reduced = max(optimizer.learning_rate * self.factor, self.min_lr)
                if reduced < optimizer.learning_rate:
                    optimizer.learning_rate = reduced
                self.cooldown_left, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch's start to schedule(epoch, current_rate) (Keras)."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        optimizer = self.trainer.optimizer
        optimizer.learning_rate = float(self.schedule(epoch, optimizer.learning_rate))


class Lookahead(Callback):
    """Lookahead (Zhang et al., 2019) as airbench uses it: a slow copy of the weights (and of
    batch norm's moving statistics) trails the trained ones. Every `every` steps, and at each
    epoch's last step so that validation and the saved model see it, the slow copy moves toward
    the weights, slow += (1 − d)·(weights − slow), and the weights become the slow copy. d rises
    from 0 as decay · progress**power, so the early steps run as without it and the late ones
    average out the noise of SGD. Progress is the steps taken over the learning-rate schedule's
    total when it has one (OneCycle, which a time budget re-plans), else over fit's epochs × steps
    (taken as done when neither is known).

    The slow copy starts from the weights at the start of fit (a resumed run starts a new one).

    Example:
        >>> Lookahead(every=5, decay=0.95**5).decay_at(0.5)
        0.0967...
    """

    def __init__(self, every: int = 5, decay: float = 0.95**5, power: float = 3.0) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"Lookahead: expected `every` to be a whole number of steps >= 1. Received: {every!r}")
        if not 0 <= decay < 1 or not power > 0:
            raise ConfigError(f"Lookahead: expected 0 <= decay < 1 and power > 0. Received: {decay=}, {power=}")
        self.every, self.decay, self.power = every, decay, power
        self._slow: list[Any] = []
        self._taken = 0

    def __repr__(self) -> str:
        return f"Lookahead(every={self.every}, decay={self.decay:.4g}, power={self.power:g})"

    def decay_at(self, progress: float) -> float:
        """The share of the slow copy a sync keeps, `progress` (0 to 1) through training."""
        return self.decay * min(1.0, max(0.0, progress)) ** self.power

    def _state(self) -> list[Any]:
        return [value for value in self.trainer.model.state_dict().values() if value.is_floating_point()]

    def on_train_begin(self, logs: Logs) -> None:
        self._slow, self._taken = [value.detach().clone() for value in self._state()], 0

    def on_train_batch_end(self, batch: int, logs: Logs) -> None:
        self._taken += 1
        steps = self.params.get("steps")  # None for data of unknown length: then no sync at the epoch's end
        epoch_ends = steps is not None and batch + 1 >= steps
        if self._taken % self.every and not epoch_ends and not self.trainer.stop_training:
            return
        planned = getattr(getattr(self.trainer.optimizer, "schedule", None), "total", None)  # OneCycle's, re-planned
        planned = planned or self.params.get("epochs", 1) * (steps or 0)  # by a budget, else fit's
        progress = self._taken / planned if planned else 1.0
        with torch.no_grad():
            state = self._state()
            torch._foreach_lerp_(self._slow, state, 1.0 - self.decay_at(progress))
            torch._foreach_copy_(state, self._slow)


class FreezeWeights(Callback):
    """Train some weights for the first `after_epochs` epochs only, then hold them: from then on
    they get no gradient, so the backward pass also skips what only they needed. airbench trains
    its whitening layer's bias for 3 epochs; holding it spares the first convolution's input
    gradient, 7% of a step of `airbench_small` (benchmarks/README.md). Weights are named as in
    learning_rate_multipliers: fnmatch patterns over the model's weight names or their dotted
    tails. fit's end makes them trainable again, so the model compiles and fits as before.

    Not on several processes: DistributedDataParallel expects every weight's gradient each step.

    Example:
        >>> FreezeWeights("patch_whitening*.bias", after_epochs=3)
        FreezeWeights('patch_whitening*.bias', after_epochs=3)
    """

    def __init__(self, weights: str | Sequence[str], after_epochs: int) -> None:
        patterns = [weights] if isinstance(weights, str) else list(weights)
        if not patterns or not all(isinstance(pattern, str) and pattern for pattern in patterns):
            raise ConfigError(
                f"FreezeWeights: expected `weights` to be a weight name or pattern, or a list of them. "
                f"Received: {weights!r}"
            )
        if isinstance(after_epochs, bool) or not isinstance(after_epochs, int) or after_epochs < 0:
            raise ConfigError(
                f"FreezeWeights: expected `after_epochs` to be a whole number >= 0. Received: {after_epochs!r}"
            )
        self.patterns, self.after_epochs = patterns, after_epochs
        self._held: list[torch.nn.Parameter] = []

    def __repr__(self) -> str:
        weights = self.patterns[0] if len(self.patterns) == 1 else self.patterns
        return f"FreezeWeights({weights!r}, after_epochs={self.after_epochs})"

    def on_train_begin(self, logs: Logs) -> None:
        if self.params.get("world_size", 1) > 1:
            raise ConfigError(
                "FreezeWeights holds weights by taking their gradients away, which DistributedDataParallel "
                "does not allow: leave it out of a fit on several processes."
            )
        named = [(name, p) for name, p in self.trainer.model.named_parameters() if p.requires_grad]
        for pattern in self.patterns:
            if not any(weight_matches(name, pattern) for name, _ in named):
                raise ConfigError(
                    f"FreezeWeights: {pattern!r} matches none of the model's trainable weights "
                    f"({weight_names([name for name, _ in named])}). "
                    "Use a weight name or a pattern such as 'patch_whitening*.bias'."
                )
        self._held = [p for name, p in named if any(weight_matches(name, pattern) for pattern in self.patterns)]

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        if epoch >= self.after_epochs:
            for parameter in self._held:
                parameter.requires_grad_(False)
                parameter.grad = None  # the optimizer steps only the weights that have a gradient

    def on_train_end(self, logs: Logs) -> None:
        for parameter in self._held:
            parameter.requires_grad_(True)
        self._held = []


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every log) to a CSV file, flushed each epoch."""

    writes_files = True

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False) -> None:
        self.filename, self.separator, self.append = Path(filename), separator, append
        self.keys: list[str] | None = None

    def on_train_begin(self, logs: Logs) -> None:
        if not self.append and self.filename.exists():
            self.filename.unlink()
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        new_file = not self.filename.exists() or self.filename.stat().st_size == 0
        self.keys = self.keys or sorted(logs)
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        with open(self.filename, "a", newline="") as file:
            writer = csv.writer(file, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch", *self.keys])
            writer.writerow([epoch, *(logs.get(key, "") for key in self.keys)])


class JSONLinesLogger(Callback):
    """Append one JSON object per epoch ({"epoch": ..., "loss": ..., ...}) to a file, flushed and
    synced, so a crash loses at most the epoch in progress."""

    writes_files = True

    def __init__(self, filename: str | Path) -> None:
        self.filename = Path(filename)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        import json
        import os

        self.filename.parent.mkdir(parents=True, exist_ok=True)
        with open(self.filename, "a") as file:
            file.write(json.dumps({"epoch": epoch, **logs}) + "\n")
            file.flush()
            os.fsync(file.fileno())
