"""Merge layers: they take a list of tensors (functional API), as Keras's do.

    y = L.Add()([x, shortcut])            # or L.add([x, shortcut])
    z = L.Concatenate()([a, b])           # along the channels axis by default

Element-wise merges broadcast like Keras (an axis of size 1 stretches); Concatenate's `axis`
counts in Keras's channels-last layout with the batch axis first (-1 is the channels axis).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from hubel.errors import ConfigError
from hubel.layers.args import axis_position, channels_first_axis, keras_axis
from hubel.layers.base import Layer, Shape, register_layer

__all__ = [
    "Add",
    "Average",
    "Concatenate",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
]


class _Merge(Layer):
    """Takes a list of inputs; subclasses give the output shape and combine the tensors."""

    least_inputs = 1
    most_inputs: int | None = None

    def check_inputs(self, input_shape: Any) -> list[Shape]:
        if not isinstance(input_shape, list):
            raise self.shape_error(
                input_shape,
                "a merge layer takes a list of inputs",
                f"Call it on a list: {type(self).__name__}()([a, b]).",
            )
        count = len(input_shape)
        if count < self.least_inputs or (self.most_inputs is not None and count > self.most_inputs):
            wanted = (
                f"exactly {self.most_inputs}"
                if self.most_inputs == self.least_inputs
                else f"at least {self.least_inputs}"
            )
            raise ConfigError(f"{self.describe()}: takes {wanted} inputs. Received: {count} inputs")
        ranks = {len(shape) for shape in input_shape}
        if len(ranks) > 1:
            raise self.shape_error(
                input_shape, f"its inputs have different ranks {sorted(ranks)}", "Reshape them to one rank first."
            )
        return input_shape


class _Elementwise(_Merge):
    """An element-wise combination of same-shaped (or broadcastable) inputs."""

    combine: Callable[[Tensor, Tensor], Tensor]

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = self.check_inputs(input_shape)
        output = list(shapes[0])
        for shape in shapes[1:]:
            for axis, size in enumerate(shape):
                if size != output[axis] and 1 not in (size, output[axis]):
                    raise self.shape_error(
                        shapes,
                        f"axis {axis + 1} has sizes {output[axis]} and {size}, which neither match nor broadcast",
                        "Give every input the same shape (e.g. a 1x1 Conv2D to match the channels).",
                    )
                output[axis] = max(size, output[axis])
        return tuple(output)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return functools.reduce(type(self).combine, inputs)


@register_layer
class Add(_Elementwise):
    """The sum of its inputs (a residual connection: `L.add([x, f(x)])`).

    Example:
        >>> Add().compute_output_shape([(8, 8, 16), (8, 8, 16)])
        (8, 8, 16)
    """

    combine = torch.add


@register_layer
class Subtract(_Elementwise):
    """The first input minus the second."""

    least_inputs = most_inputs = 2
    combine = torch.sub


@register_layer
class Multiply(_Elementwise):
    """The product of its inputs (a gate: `L.multiply([x, attention])`)."""

    combine = torch.mul


@register_layer
class Maximum(_Elementwise):
    """The element-wise maximum of its inputs."""

    combine = torch.maximum


@register_layer
class Minimum(_Elementwise):
    """The element-wise minimum of its inputs."""

    combine = torch.minimum


@register_layer
class Average(_Elementwise):
    """The mean of its inputs."""

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return functools.reduce(torch.add, inputs) / len(inputs)


@register_layer
class Concatenate(_Merge):
    """Joins its inputs along one axis (Keras layout, batch axis 0; -1, the default, is channels).

    Example:
        >>> Concatenate().compute_output_shape([(8, 8, 16), (8, 8, 32)])
        (8, 8, 48)
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = keras_axis("Concatenate", axis)
        self._internal_axis = 1

    def compute_output_shape(self, input_shape: Any) -> Shape:
        shapes = self.check_inputs(input_shape)
        rank = len(shapes[0])
        axis = axis_position(self.axis, rank)  # 1..rank, batch axis excluded
        if axis is None:
            raise self.shape_error(
                shapes, f"axis={self.axis} is outside inputs of rank {rank} (plus the batch axis)", "Use axis=-1."
            )
        for shape in shapes[1:]:
            others = [(a, b) for index, (a, b) in enumerate(zip(shapes[0], shape)) if index != axis - 1]
            if any(a != b for a, b in others):
                raise self.shape_error(
                    shapes,
                    f"joining along axis {self.axis} needs every other axis to match",
                    "Resize or pool the inputs to the same size first.",
                )
        self._internal_axis = channels_first_axis(axis, rank)
        output = list(shapes[0])
        output[axis - 1] = sum(shape[axis - 1] for shape in shapes)
        return tuple(output)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return torch.cat(inputs, dim=self._internal_axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


def add(inputs: list[Any], **kwargs: Any) -> Any:
    """`Add(**kwargs)(inputs)`, as keras.layers.add."""
    return Add(**kwargs)(inputs)


def subtract(inputs: list[Any], **kwargs: Any) -> Any:
    """`Subtract(**kwargs)(inputs)`."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list[Any], **kwargs: Any) -> Any:
    """`Multiply(**kwargs)(inputs)`."""
    return Multiply(**kwargs)(inputs)


def maximum(inputs: list[Any], **kwargs: Any) -> Any:
    """`Maximum(**kwargs)(inputs)`."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list[Any], **kwargs: Any) -> Any:
    """`Minimum(**kwargs)(inputs)`."""
    return Minimum(**kwargs)(inputs)


def average(inputs: list[Any], **kwargs: Any) -> Any:
    """`Average(**kwargs)(inputs)`."""
    return Average(**kwargs)(inputs)


def concatenate(inputs: list[Any], axis: int = -1, **kwargs: Any) -> Any:
    """`Concatenate(axis, **kwargs)(inputs)`, as keras.layers.concatenate."""
    return Concatenate(axis=axis, **kwargs)(inputs)
