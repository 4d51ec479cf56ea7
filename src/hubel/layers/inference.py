"""Faster ways to a layer's output when no gradient will be asked of it (predict, evaluate,
validation, a frozen backbone's feature pass). Each returns the same values as the layer's own
path, to float rounding, or None when it does not apply and the layer takes its usual path.

- Max pooling whose windows do not overlap is a chain of `torch.maximum` over strided views of
  the input: torch's kernel without indices is slow on channels-last tensors (on two AMD EPYC
  cores, 2x2 pooling of 256 (64, 26, 26) images took 4.9 ms, the views 2.5 ms; 1D pooling of
  IMDB's (496, 128) sequences 70 ms, the views 3.5 ms). Training pools with indices, so that
  the gradient goes to a window's first maximum, as Keras's does.
- Dense and 2D convolutions in float32 on a CPU run through oneDNN's inference primitives with
  a ReLU fused in (`torch.ops.mkldnn._linear_pointwise` and `_convolution_pointwise`, what
  torch.compile emits for them). `F.linear` goes to MKL, which takes a slow path on AMD CPUs:
  a (256, 576) x (576, 1024) product took 2.9 ms there against oneDNN's 1.6 ms.

The oneDNN operators are torch's private ones, so they are used only after a first call on a
small example has matched torch's public functions; a torch without them, or where they
disagree, keeps the public path (benchmarks/README.md, "Inference without gradients").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["conv2d_for_inference", "gradient_needed", "linear_for_inference", "max_pool_for_inference", "tracing"]

_FUSED = {"relu": "relu", "linear": "none"}  # hubel's activation -> oneDNN's post-op


def gradient_needed(*tensors: Tensor | None) -> bool:
    """Whether autograd would record an operation on these tensors."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def tracing() -> bool:
    """True while torch.jit traces (the ONNX export) or torch.compile compiles the model: they get
    torch's public operators, which exporters and compilers know."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def max_pool_for_inference(x: Tensor, pool_size: Sequence[int], strides: Sequence[int]) -> Tensor | None:
    """Max pooling over non-overlapping windows with no padding (pool_size == strides, trailing
    rows and columns that fill no window dropped), as `torch.maximum` over strided views;
    (N, C, *spatial) -> (N, C, *spatial'). NaN propagates, as in torch's pooling.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> max_pool_for_inference(x, (2, 2), (2, 2)).flatten().tolist()
        [5.0, 7.0, 13.0, 15.0]
    """
    if tuple(pool_size) != tuple(strides) or x.device.type != "cpu" or gradient_needed(x) or tracing():
        return None
    for axis, size in enumerate(pool_size, start=2):
        whole = x.shape[axis] // size * size
        if whole == 0:
            return None  # no window fits: the layer's own path says so
        windows = [x.narrow(axis, 0, whole)[(slice(None),) * axis + (slice(i, None, size),)] for i in range(size)]
        x = functools.reduce(torch.maximum, windows) if size > 1 else windows[0]
    return x


def linear_for_inference(x: Tensor, weight: Tensor, bias: Tensor | None, activation: str) -> Tensor | None:
    """x @ weight.T + bias on (N, F) float32 CPU tensors through oneDNN, with relu fused in;
    None where that does not apply (the caller then applies its own activation).

    Example:
        >>> x, w = torch.ones(2, 3), torch.full((4, 3), -1.0)
        >>> y = linear_for_inference(x, w, None, "relu")
        >>> y is None or y.tolist() == [[0.0] * 4] * 2
        True
    """
    if not _applies(x, weight, bias) or x.dim() != 2 or activation not in _FUSED or not _onednn_available():
        return None
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, _FUSED[activation], [], "")


def conv2d_for_inference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    strides: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    activation: str,
) -> Tensor | None:
    """`F.conv2d` then the activation, through oneDNN with relu fused in, for float32 CPU
    tensors; None where that does not apply. (N, C, H, W) -> (N, filters, H', W') in x's layout."""
    if not _applies(x, weight, bias) or x.dim() != 4 or activation not in _FUSED or not _onednn_available():
        return None
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, list(padding), list(strides), list(dilation), groups, _FUSED[activation], [], ""
    )


def _applies(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")  # autocast would have run the public op in bf16
        and not gradient_needed(x, weight, bias)
        and not tracing()
    )


@functools.cache
def _onednn_available() -> bool:
    """True when torch has oneDNN's fused operators and they match F.linear and F.conv2d on a
    small example; checked once per process."""
    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 6, 6, generator=generator).contiguous(memory_format=torch.channels_last)
    kernel, bias = torch.randn(5, 3, 3, 3, generator=generator), torch.randn(5, generator=generator)
    rows, weight = torch.randn(4, 7, generator=generator), torch.randn(5, 7, generator=generator)
    try:
        with torch.no_grad():
            conv = torch.ops.mkldnn._convolution_pointwise(x, kernel, bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
            linear = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
            return torch.allclose(conv, F.conv2d(x, kernel, bias, 1, 1).relu(), atol=1e-5) and torch.allclose(
                linear, F.linear(rows, weight, bias), atol=1e-5
            )
    except (AttributeError, RuntimeError, TypeError):
        return False
