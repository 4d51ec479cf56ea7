"""Keras losses by name, each returning one value per example (the engine averages).

A probability output that carries its logits (hubel's softmax and sigmoid attach them, as
Keras does) is scored with a fused, stable log-softmax or log-sigmoid: no log of a
probability, no NaN on a confident mistake. Other probabilities are clipped to [1e-7, 1 − 1e-7]
as in Keras.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError, ShapeError
from hubel.registry import Registry

__all__ = [
    "LOSSES",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get_loss",
    "list_losses",
    "logits_of",
]

EPSILON = 1e-7
LOSSES: Registry[type[Loss]] = Registry("loss", "hubel.train.list_losses()")


def logits_of(output: Tensor) -> Tensor | None:
    """The pre-activation of a softmax/sigmoid output, when the layer that made it kept it."""
    return getattr(output, "_hubel_logits", None)


class Loss:
    """A loss: call it on (output, target) for a per-example loss of shape (N,)."""

    name = "loss"

    def __init__(self, from_logits: bool = False) -> None:
        self.from_logits = bool(from_logits)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _register(*names: str) -> Callable[[type[Loss]], type[Loss]]:
    def add(cls: type[Loss]) -> type[Loss]:
        cls.name = names[0]
        for name in names:
            LOSSES.register(name)(cls)
        return cls

    return add


def _log_probabilities(output: Tensor, from_logits: bool) -> Tensor:
    """log p over the last axis: from logits, from attached logits, or from clipped probabilities."""
    logits = output if from_logits else logits_of(output)
    if logits is not None:
        return F.log_softmax(logits, dim=-1)
    probabilities = output / output.sum(dim=-1, keepdim=True)
    return probabilities.clamp(EPSILON, 1.0 - EPSILON).log()


def _per_example(values: Tensor) -> Tensor:
    """Average everything but the batch axis: one loss per example."""
    return values.reshape(values.shape[0], -1).mean(dim=1)


def _label_smoothing(value: float, loss: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{loss}: expected 0 <= label_smoothing <= 1. Received: label_smoothing={value!r}")
    return float(value)


class _Smoothed(Loss):
    """A cross-entropy whose targets label_smoothing moves towards the uniform distribution, as
    Keras's: t·(1 − s) + s/num_classes (s/2 for binary targets)."""

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0) -> None:
        super().__init__(from_logits)
        self.label_smoothing = _label_smoothing(label_smoothing, type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits}, label_smoothing={self.label_smoothing})"


@_register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_Smoothed):
    """−log p[target] for integer class targets, shaped (N,) or (N, 1). label_smoothing is
    hubel's addition (Keras's sparse loss has none): the categorical loss of the smoothed one-hot
    targets, (1 − s)·(−log p[target]) + s·mean(−log p)."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        if target.dim() == output.dim() and target.shape[-1] == 1:
            target = target.squeeze(-1)
        if target.shape != output.shape[:-1]:
            raise ShapeError(
                f"sparse_categorical_crossentropy expects integer targets shaped {tuple(output.shape[:-1])} for "
                f"outputs {tuple(output.shape)}; received targets {tuple(target.shape)}. One-hot targets need "
                f"loss='categorical_crossentropy'."
            )
        log_p = _log_probabilities(output, self.from_logits)
        loss = -log_p.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)
        if self.label_smoothing:
            loss = (1.0 - self.label_smoothing) * loss - self.label_smoothing * log_p.mean(dim=-1)
        return _per_example(loss)


@_register("categorical_crossentropy")
class CategoricalCrossentropy(_Smoothed):
    """−Σ target·log p for one-hot (or soft) targets shaped like the output; with
    label_smoothing s, of t·(1 − s) + s/num_classes, as Keras's."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        if target.shape != output.shape:
            raise ShapeError(
                f"categorical_crossentropy expects one-hot targets shaped like the outputs {tuple(output.shape)}; "
                f"received {tuple(target.shape)}. Integer class targets need loss='sparse_categorical_crossentropy'."
            )
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / target.shape[-1]
        return _per_example(-(target * _log_probabilities(output, self.from_logits)).sum(dim=-1))


@_register("binary_crossentropy")
class BinaryCrossentropy(_Smoothed):
    """−[t·log p + (1 − t)·log(1 − p)], averaged over the last axis; with label_smoothing s, of
    t·(1 − s) + s/2, as Keras's."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        target = _match(output, target, "binary_crossentropy").to(output.dtype)
        if self.label_smoothing:
            target = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        logits = output if self.from_logits else logits_of(output)
        if logits is not None:
            return _per_example(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))
        p = output.clamp(EPSILON, 1.0 - EPSILON)
        return _per_example(-(target * p.log() + (1.0 - target) * (1.0 - p).log()))


@_register("mean_squared_error", "mse")
class MeanSquaredError(Loss):
    """Mean of (output − target)² over the last axis."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return _per_example((output - _match(output, target, "mean_squared_error").to(output.dtype)).square())


@_register("mean_absolute_error", "mae")
class MeanAbsoluteError(Loss):
    """Mean of |output − target| over the last axis."""

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        return _per_example((output - _match(output, target, "mean_absolute_error").to(output.dtype)).abs())


def _match(output: Tensor, target: Tensor, name: str) -> Tensor:
    if target.shape == output.shape:
        return target
    if target.numel() == output.numel():  # (N,) targets for (N, 1) outputs, as Keras allows
        return target.reshape(output.shape)
    raise ShapeError(f"{name}: targets {tuple(target.shape)} do not match outputs {tuple(output.shape)}.")


def get_loss(loss: str | Loss | Callable[[Tensor, Tensor], Tensor]) -> Loss | Callable[[Tensor, Tensor], Tensor]:
    """A loss by Keras name, a Loss, or any callable (output, target) -> per-example or scalar loss."""
    if isinstance(loss, str):
        return LOSSES.get(loss.lower())()
    if callable(loss):
        return loss
    raise ConfigError(
        f"expected `loss` to be a name such as 'sparse_categorical_crossentropy' or a callable. Received: loss={loss!r}"
    )


def list_losses() -> list[str]:
    """Every loss name compile() accepts."""
    return LOSSES.names()
