"""Sliding-window arithmetic shared by convolutions and poolings, TensorFlow-exact.

padding="valid" uses no padding and drops what does not fit; padding="same" gives
ceil(size / stride) outputs and, when the total padding is odd, puts the extra row or
column at the bottom/right, as TensorFlow does; padding="causal" (1D only) pads on the
left so that output t sees inputs up to t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["effective_size", "output_size", "pad", "padding_amounts", "symmetric"]


def effective_size(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: (F − 1)·d + 1."""
    return (kernel - 1) * dilation + 1


def output_size(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    """Outputs along one axis; < 1 means the window does not fit (valid padding).

    Example:
        >>> output_size(28, 3, 1, "valid"), output_size(7, 3, 2, "same"), output_size(3, 5, 1, "valid")
        (26, 4, -1)
    """
    if padding in ("same", "causal"):
        return math.ceil(size / stride)
    return (size - effective_size(kernel, dilation)) // stride + 1


def padding_amounts(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding along one axis.

    Example:
        >>> padding_amounts(8, 3, 2, "same")  # TF: the odd pixel goes after
        (0, 1)
        >>> padding_amounts(7, 3, 2, "same")
        (1, 1)
    """
    span = effective_size(kernel, dilation)
    if padding == "causal":
        return (span - 1, 0)
    if padding != "same":
        return (0, 0)
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return (total // 2, total - total // 2)


def symmetric(amounts: Sequence[tuple[int, int]]) -> bool:
    """True when every axis pads equally on both sides (so the op can pad by itself)."""
    return all(before == after for before, after in amounts)


def pad(x: Tensor, amounts: Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """Pad the trailing spatial axes of an (N, C, *spatial) tensor; amounts in axis order."""
    flat: list[int] = []
    for before, after in reversed(amounts):  # F.pad wants the last axis first
        flat += [before, after]
    if not any(flat):
        return x
    out = F.pad(x, flat, value=value)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out
