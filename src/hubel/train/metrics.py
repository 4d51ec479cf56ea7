"""Metrics, accumulated on the device (no host sync per step); result() reads them once.

"accuracy" resolves as in Keras: binary accuracy for a single output unit or a binary loss,
sparse categorical accuracy for a sparse loss, categorical accuracy otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor

from hubel.errors import ConfigError
from hubel.registry import Registry

__all__ = ["METRICS", "Metric", "MetricFunction", "get_metric", "list_metrics"]

METRICS: Registry[Callable[..., Metric]] = Registry("metric", "hubel.train.list_metrics()")


class Metric:
    """A running mean of a per-example score."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total: Tensor | None = None
        self.count = 0
        self.last_batch: Tensor | None = None

    def reset(self) -> None:
        self.total, self.count = None, 0

    def update(self, output: Tensor, target: Tensor) -> None:
        scores = self.score(output.detach(), target).float()
        subtotal = scores.sum()
        self.total = subtotal if self.total is None else self.total + subtotal
        self.count += scores.numel()
        self.last_batch = subtotal / max(scores.numel(), 1)  # this batch's own value, on the device

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def result(self) -> float:
        return float(self.total) / self.count if self.total is not None and self.count else float("nan")


class MetricFunction(Metric):
    """A metric from a function (output, target) -> per-example scores."""

    def __init__(self, name: str, function: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__(name)
        self.function = function

    def score(self, output: Tensor, target: Tensor) -> Tensor:
        return self.function(output, target)


def _labels(target: Tensor, output: Tensor) -> Tensor:
    return target.reshape(output.shape[:-1]).long()


def sparse_categorical_accuracy(output: Tensor, target: Tensor) -> Tensor:
    return (output.argmax(dim=-1) == _labels(target, output)).float()


def categorical_accuracy(output: Tensor, target: Tensor) -> Tensor:
    return (output.argmax(dim=-1) == target.argmax(dim=-1)).float()


def binary_accuracy(output: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    predicted = output > threshold
    return (predicted == (target.reshape(output.shape) > 0.5)).float().reshape(output.shape[0], -1).mean(dim=1)


def top_k_categorical_accuracy(output: Tensor, target: Tensor, k: int = 5) -> Tensor:
    return _in_top_k(output, target.argmax(dim=-1), k)


def sparse_top_k_categorical_accuracy(output: Tensor, target: Tensor, k: int = 5) -> Tensor:
    return _in_top_k(output, _labels(target, output), k)


def _in_top_k(output: Tensor, labels: Tensor, k: int) -> Tensor:
    top = output.topk(min(k, output.shape[-1]), dim=-1).indices
    return (top == labels.unsqueeze(-1)).any(dim=-1).float()


def _factory(name: str, function: Callable[..., Tensor]) -> Callable[..., Metric]:
    def make(**options: float) -> Metric:
        return MetricFunction(name, functools.partial(function, **options) if options else function)

    return make


for _name, _function in {
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
}.items():
    METRICS.register(_name)(_factory(_name, _function))


def get_metric(
    metric: str | Metric | Callable[[Tensor, Tensor], Tensor], loss_name: str, from_logits: bool = False
) -> Metric:
    """A metric by Keras name ("accuracy"/"acc" resolved from the loss), a Metric, or a function.

    Example:
        >>> get_metric("accuracy", "sparse_categorical_crossentropy").function.__name__
        'sparse_categorical_accuracy'
    """
    if isinstance(metric, Metric):
        return metric
    if callable(metric) and not isinstance(metric, str):
        return MetricFunction(getattr(metric, "__name__", "metric"), metric)
    if not isinstance(metric, str):
        raise ConfigError(f"expected a metric name such as 'accuracy', a Metric or a function. Received: {metric!r}")
    name = metric.lower()
    if name in ("accuracy", "acc"):
        if "binary" in loss_name:
            threshold = 0.0 if from_logits else 0.5  # logits: the decision boundary is 0
            return MetricFunction(metric, functools.partial(binary_accuracy, threshold=threshold))
        function = sparse_categorical_accuracy if "sparse" in loss_name else categorical_accuracy
        return MetricFunction(metric, function)
    return METRICS.get(name)()


def list_metrics() -> list[str]:
    """Every metric name compile() accepts, besides "accuracy"."""
    return METRICS.names()
