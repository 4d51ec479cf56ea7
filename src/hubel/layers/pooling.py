"""Pooling: MaxPooling2D/1D, AveragePooling2D/1D (strides default to pool_size) and the
global poolings.

padding="same" pads like TensorFlow: max pooling ignores the padding, and average pooling
divides by the number of real (unpadded) values in each window.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from hubel.layers import window
from hubel.layers.args import choice, integer_tuple
from hubel.layers.base import Layer, Shape, register_layer
from hubel.layers.inference import max_pool_for_inference, tracing

__all__ = [
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "MaxPooling1D",
    "MaxPooling2D",
]

_LAYOUT = {1: "(steps, channels)", 2: "(height, width, channels)"}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d}


class _MaxPoolUnpooledGradient(torch.autograd.Function):
    """2D max pooling over windows that do not overlap, whose backward pass places each gradient
    at its window's maximum with `max_unpool2d`: the same values as torch's pooling backward (both
    follow the indices the forward pass recorded, unique when windows do not overlap), in less
    time on a CPU. (128, 64, 26, 26) bf16 channels-last, forward and backward: 3.5 ms against 4.6;
    the Fashion-MNIST tutorial network's bf16 fit at batch 128, 1.06x (benchmarks/README.md, "Max
    pooling's backward pass"). 1D pooling keeps torch's: max_unpool1d was slower."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, pool_size: tuple[int, int]) -> Tensor:  # (N, C, H, W) -> (N, C, H', W')
        pooled, indices = F.max_pool2d_with_indices(x, pool_size, pool_size)
        ctx.save_for_backward(indices)
        ctx.pool_size, ctx.input_size = pool_size, x.shape[2:]
        return pooled

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gradient: Tensor) -> tuple[Tensor, None]:
        (indices,) = ctx.saved_tensors
        # the operator F.max_unpool2d calls, without the wrapper's check of output_size (the input's
        # own size here), whose first call imports sympy: 0.6 s of a process's first fit
        return torch.ops.aten.max_unpool2d(gradient, indices, list(ctx.input_size)), None


class _Pooling(Layer):
    rank = 2
    mode = "max"

    def __init__(
        self,
        pool_size: int | tuple[int, ...] = 2,
        strides: int | tuple[int, ...] | None = None,
        padding: str = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = integer_tuple(owner, "pool_size", pool_size, self.rank)
        self.strides = self.pool_size if strides is None else integer_tuple(owner, "strides", strides, self.rank)
        self.padding = choice(owner, "padding", padding, ("valid", "same"))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        *spatial, channels = self.expect_rank(input_shape, self.rank + 1, _LAYOUT[self.rank])
        sizes = self.fit_windows(
            input_shape, tuple(spatial), self.pool_size, self.strides, self.padding, argument="pool_size"
        )
        return (*sizes, channels)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, *spatial) -> (N, C, *spatial')
        amounts = [
            window.padding_amounts(size, k, s, self.padding)
            for size, k, s in zip(x.shape[2:], self.pool_size, self.strides)
        ]
        implicit = [before for before, _ in amounts]
        if self.mode == "max":
            if not any(before or after for before, after in amounts):
                pooled = max_pool_for_inference(x, self.pool_size, self.strides)
                if pooled is not None:
                    return pooled
                if self.rank == 2 and self.pool_size == self.strides and x.device.type == "cpu" and not tracing():
                    return _MaxPoolUnpooledGradient.apply(x, self.pool_size)
            if window.symmetric(amounts):  # torch pads max pooling with -inf by itself
                return _MAX[self.rank](x, self.pool_size, self.strides, implicit)
            return _MAX[self.rank](window.pad(x, amounts, -math.inf), self.pool_size, self.strides)
        if window.symmetric(amounts):
            return _AVG[self.rank](x, self.pool_size, self.strides, implicit, count_include_pad=False)
        # Uneven padding: average of the zero-padded input over the share of real values per window.
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        covered = _AVG[self.rank](window.pad(ones, amounts), self.pool_size, self.strides)
        return _AVG[self.rank](window.pad(x, amounts), self.pool_size, self.strides) / covered

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


@register_layer
class MaxPooling2D(_Pooling):
    """Max over windows; strides default to pool_size; channels unchanged.

    Example:
        >>> MaxPooling2D(2).compute_output_shape((26, 26, 64))
        (13, 13, 64)
    """


@register_layer
class AveragePooling2D(_Pooling):
    """Mean over windows; with padding="same" the padding is not counted.

    Example:
        >>> AveragePooling2D(3, strides=2, padding="same").compute_output_shape((7, 7, 8))
        (4, 4, 8)
    """

    mode = "avg"


@register_layer
class MaxPooling1D(_Pooling):
    """Max over windows of steps.

    Example:
        >>> MaxPooling1D(5).compute_output_shape((496, 128))
        (99, 128)
    """

    rank = 1


@register_layer
class AveragePooling1D(_Pooling):
    """Mean over windows of steps.

    Example:
        >>> AveragePooling1D(2).compute_output_shape((10, 4))
        (5, 4)
    """

    rank = 1
    mode = "avg"


class _GlobalPooling(Layer):
    rank = 2
    mode = "max"

    def __init__(self, keepdims: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        *_, channels = self.expect_rank(input_shape, self.rank + 1, _LAYOUT[self.rank])
        return (*(1,) * self.rank, channels) if self.keepdims else (channels,)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, *spatial) -> (N, C) or (N, C, 1, ...)
        axes = tuple(range(2, 2 + self.rank))
        if self.mode == "max":
            return x.amax(dim=axes, keepdim=self.keepdims)
        return x.mean(dim=axes, keepdim=self.keepdims)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}


@register_layer
class GlobalMaxPooling2D(_GlobalPooling):
    """Max over height and width: one value per channel.

    Example:
        >>> GlobalMaxPooling2D().compute_output_shape((4, 4, 64))
        (64,)
    """


@register_layer
class GlobalAveragePooling2D(_GlobalPooling):
    """Mean over height and width: one value per channel.

    Example:
        >>> GlobalAveragePooling2D(keepdims=True).compute_output_shape((5, 5, 1280))
        (1, 1, 1280)
    """

    mode = "avg"


@register_layer
class GlobalMaxPooling1D(_GlobalPooling):
    """Max over steps: one value per channel.

    Example:
        >>> GlobalMaxPooling1D().compute_output_shape((99, 128))
        (128,)
    """

    rank = 1


@register_layer
class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over steps: one value per channel.

    Example:
        >>> GlobalAveragePooling1D().compute_output_shape((500, 16))
        (16,)
    """

    rank = 1
    mode = "avg"
