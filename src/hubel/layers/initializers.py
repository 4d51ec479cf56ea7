"""Keras weight initializers by name, written in place with torch's RNG (torch.manual_seed
makes them repeatable). Fans are given by the layer because hubel stores kernels in torch's
layout while Keras computes fans from its own: fan_in = receptive field × input channels,
fan_out = receptive field × output channels."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from hubel.errors import ConfigError
from hubel.registry import Registry

__all__ = ["INITIALIZERS", "initialize", "list_initializers"]

Initializer = Callable[[Tensor, int, int], None]

INITIALIZERS: Registry[Initializer] = Registry("initializer", "hubel.layers.list_initializers()")

# Keras draws 'normal' variance-scaling initializers from a normal truncated at two standard
# deviations, scaled up so that the truncated distribution keeps the requested variance.
_TRUNCATED_STD_CORRECTION = 0.87962566103423978


def _uniform(tensor: Tensor, limit: float) -> None:
    torch.nn.init.uniform_(tensor, -limit, limit)


def _truncated(tensor: Tensor, std: float) -> None:
    torch.nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std)


@INITIALIZERS.register("glorot_uniform")
def glorot_uniform(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _uniform(tensor, math.sqrt(6.0 / (fan_in + fan_out)))


@INITIALIZERS.register("glorot_normal")
def glorot_normal(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _truncated(tensor, math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATED_STD_CORRECTION)


@INITIALIZERS.register("he_uniform")
def he_uniform(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _uniform(tensor, math.sqrt(6.0 / fan_in))


@INITIALIZERS.register("he_normal")
def he_normal(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _truncated(tensor, math.sqrt(2.0 / fan_in) / _TRUNCATED_STD_CORRECTION)


@INITIALIZERS.register("lecun_uniform")
def lecun_uniform(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _uniform(tensor, math.sqrt(3.0 / fan_in))


@INITIALIZERS.register("lecun_normal")
def lecun_normal(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _truncated(tensor, math.sqrt(1.0 / fan_in) / _TRUNCATED_STD_CORRECTION)


@INITIALIZERS.register("random_uniform")
def random_uniform(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    _uniform(tensor, 0.05)


INITIALIZERS.register("uniform")(random_uniform)


@INITIALIZERS.register("random_normal")
def random_normal(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    torch.nn.init.normal_(tensor, 0.0, 0.05)


INITIALIZERS.register("normal")(random_normal)


@INITIALIZERS.register("zeros")
def zeros(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    torch.nn.init.zeros_(tensor)


@INITIALIZERS.register("ones")
def ones(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    torch.nn.init.ones_(tensor)


@INITIALIZERS.register("dirac")
def dirac(tensor: Tensor, fan_in: int, fan_out: int) -> None:
    """hubel's own (airbench's convolution init): filter i < input channels passes input channel
    i through unchanged (a 1 at the kernel's centre, 0 elsewhere); any further filters are
    glorot_uniform. A convolution with as many filters as input channels starts as the identity.
    Kernels only: (filters, input channels, *window), torch's layout."""
    if tensor.dim() < 2:
        raise ConfigError(
            f"the 'dirac' initializer is for kernels (filters x input channels x window). Received a weight "
            f"of shape {tuple(tensor.shape)}: use it as kernel_initializer, not for a bias or a vector."
        )
    glorot_uniform(tensor, fan_in, fan_out)
    passed = min(tensor.shape[0], tensor.shape[1])
    tensor[:passed].zero_()
    centre = tuple(size // 2 for size in tensor.shape[2:])
    channels = torch.arange(passed)
    tensor[(channels, channels, *centre)] = 1.0


def initialize(name: str, tensor: Tensor, fan_in: int = 1, fan_out: int = 1) -> None:
    """Fill `tensor` in place with the named initializer, without recording gradients."""
    with torch.no_grad():
        INITIALIZERS.get(name)(tensor, fan_in, fan_out)


def list_initializers() -> list[str]:
    """Every name a layer's `*_initializer=` argument accepts."""
    return INITIALIZERS.names()
