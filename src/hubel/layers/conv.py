"""Convolutions: Conv2D, Conv1D, DepthwiseConv2D, and PatchWhitening (a convolution fitted to
the data by adapt() instead of trained).

Kernels are stored in torch's layout — (filters, in_channels / groups, *kernel_size) — and
named `kernel` and `bias` as in Keras. padding="same" pads like TensorFlow (the odd row or
column goes at the bottom/right).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError
from hubel.layers import window
from hubel.layers.activations import get_activation
from hubel.layers.args import choice, integer_tuple, number, positive_int
from hubel.layers.base import Layer, Shape, register_layer
from hubel.layers.inference import conv2d_for_inference
from hubel.layers.initializers import INITIALIZERS

__all__ = ["Conv1D", "Conv2D", "DepthwiseConv2D", "PatchWhitening"]

_CONV = {1: F.conv1d, 2: F.conv2d}
_LAYOUT = {1: "(steps, channels)", 2: "(height, width, channels)"}


class _Conv(Layer):
    """A convolution over `rank` spatial axes; subclasses fix rank and the kernel's shape."""

    rank = 2
    paddings: tuple[str, ...] = ("valid", "same")
    strides_with_dilation = False  # Keras's Conv1D/Conv2D refuse both > 1; its DepthwiseConv2D takes both

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: str = "valid",
        dilation_rate: int | tuple[int, ...] = 1,
        activation: str | None = None,
        use_bias: bool = True,
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.kernel_size = integer_tuple(owner, "kernel_size", kernel_size, self.rank)
        self.strides = integer_tuple(owner, "strides", strides, self.rank)
        self.padding = choice(owner, "padding", padding, self.paddings)
        self.dilation_rate = integer_tuple(owner, "dilation_rate", dilation_rate, self.rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1 and not self.strides_with_dilation:
            raise ConfigError(
                f"{owner}: strides > 1 cannot be combined with dilation_rate > 1 (as in Keras). "
                f"Received: strides={strides!r}, dilation_rate={dilation_rate!r}"
            )
        self.activation, self._activation_fn = get_activation(activation, in_place=True)  # on its fresh output
        self.use_bias = bool(use_bias)
        INITIALIZERS.get(bias_initializer)
        self.bias_initializer = bias_initializer

    def output_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        *spatial, channels = self.expect_rank(input_shape, self.rank + 1, _LAYOUT[self.rank])
        sizes = self.fit_windows(
            input_shape, tuple(spatial), self.kernel_size, self.strides, self.padding, self.dilation_rate
        )
        return (*sizes, self.output_channels(channels))

    def create_weights(self, input_shape: Shape) -> None:
        if self.use_bias:
            self.add_weight("bias", (self.output_channels(input_shape[-1]),), self.bias_initializer)
        else:
            self.register_parameter("bias", None)

    @property
    def groups(self) -> int:
        return 1

    def keras_weight(self, name: str, value: Tensor) -> Any:
        # torch's (filters, in / groups, *kernel_size) -> Keras's (*kernel_size, in / groups, filters)
        return super().keras_weight(name, value.permute(*range(2, value.dim()), 1, 0) if name == "kernel" else value)

    def internal_weight(self, name: str, value: Tensor) -> Tensor:
        return value.permute(-1, -2, *range(value.dim() - 2)) if name == "kernel" else value

    def forward(self, x: Tensor) -> Tensor:  # (N, C, *spatial) -> (N, filters, *spatial')
        amounts = [
            window.padding_amounts(size, k, s, self.padding, d)
            for size, k, s, d in zip(x.shape[2:], self.kernel_size, self.strides, self.dilation_rate)
        ]
        if window.symmetric(amounts):
            implicit = [before for before, _ in amounts]
        else:
            x, implicit = window.pad(x, amounts), [0] * self.rank
        if self.rank == 2:
            fused = conv2d_for_inference(
                x, self.kernel, self.bias, self.strides, implicit, self.dilation_rate, self.groups, self.activation
            )
            if fused is not None:
                return fused
        y = _CONV[self.rank](x, self.kernel, self.bias, self.strides, implicit, self.dilation_rate, self.groups)
        return self._activation_fn(y)

    def macs(self) -> int:
        (*_, in_channels), (*spatial, out_channels) = self._require_built()
        return math.prod(self.kernel_size) * (in_channels // self.groups) * math.prod(spatial) * out_channels

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            "activation": self.activation,
            "use_bias": self.use_bias,
            "bias_initializer": self.bias_initializer,
        }


@register_layer
class Conv2D(_Conv):
    """2D convolution with `filters` output channels.

    Example:
        >>> Conv2D(64, (3, 3), activation="relu").compute_output_shape((28, 28, 1))
        (26, 26, 64)
        >>> Conv2D(32, 3, strides=2, padding="same").compute_output_shape((7, 7, 3))
        (4, 4, 32)
    """

    rank = 2

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: str = "valid",
        dilation_rate: int | tuple[int, ...] = 1,
        groups: int = 1,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(kernel_size, strides, padding, dilation_rate, activation, use_bias, bias_initializer, **kwargs)
        owner = type(self).__name__
        self.filters = positive_int(owner, "filters", filters)
        self._groups = positive_int(owner, "groups", groups)
        if self.filters % self._groups:
            raise ConfigError(
                f"{owner}: `filters` must be divisible by `groups`. Received: filters={filters}, groups={groups}"
            )
        INITIALIZERS.get(kernel_initializer)
        self.kernel_initializer = kernel_initializer

    @property
    def groups(self) -> int:
        return self._groups

    def output_channels(self, in_channels: int) -> int:
        return self.filters

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        output = super().compute_output_shape(input_shape)
        if input_shape[-1] % self.groups:
            raise self.shape_error(
                input_shape,
                f"its {input_shape[-1]} input channels do not split into groups={self.groups}",
                "Use a groups value that divides the input channels.",
            )
        return output

    def create_weights(self, input_shape: Shape) -> None:
        per_group = input_shape[-1] // self.groups
        field = math.prod(self.kernel_size)
        self.add_weight(
            "kernel",
            (self.filters, per_group, *self.kernel_size),
            self.kernel_initializer,
            fan_in=field * per_group,
            fan_out=field * self.filters,
        )
        super().create_weights(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "groups": self.groups,
            "kernel_initializer": self.kernel_initializer,
        }


@register_layer
class Conv1D(Conv2D):
    """1D convolution over (steps, channels); padding also accepts "causal".

    Example:
        >>> Conv1D(128, 5, activation="relu").compute_output_shape((500, 32))
        (496, 128)
        >>> Conv1D(8, 3, padding="causal", dilation_rate=2).compute_output_shape((10, 4))
        (10, 8)
    """

    rank = 1
    paddings = ("valid", "same", "causal")


@register_layer
class DepthwiseConv2D(_Conv):
    """One (or depth_multiplier) spatial filters per input channel, no mixing across channels;
    strides and dilation_rate may both be > 1, as in Keras.

    Example:
        >>> DepthwiseConv2D(3, padding="same", depth_multiplier=2).compute_output_shape((16, 16, 8))
        (16, 16, 16)
    """

    rank = 2
    strides_with_dilation = True

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        strides: int | tuple[int, ...] = 1,
        padding: str = "valid",
        depth_multiplier: int = 1,
        dilation_rate: int | tuple[int, ...] = 1,
        activation: str | None = None,
        use_bias: bool = True,
        depthwise_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(kernel_size, strides, padding, dilation_rate, activation, use_bias, bias_initializer, **kwargs)
        self.depth_multiplier = positive_int(type(self).__name__, "depth_multiplier", depth_multiplier)
        INITIALIZERS.get(depthwise_initializer)
        self.depthwise_initializer = depthwise_initializer
        self._in_channels = 0

    @property
    def groups(self) -> int:
        return self._in_channels

    def output_channels(self, in_channels: int) -> int:
        return in_channels * self.depth_multiplier

    def keras_weight(self, name: str, value: Tensor) -> Any:
        if name != "kernel":
            return super().keras_weight(name, value)
        # torch's (in · multiplier, 1, kh, kw) -> Keras's (kh, kw, in, multiplier)
        grouped = value.reshape(self._in_channels, self.depth_multiplier, *self.kernel_size)
        return grouped.permute(2, 3, 0, 1).detach().cpu().numpy().copy()

    def internal_weight(self, name: str, value: Tensor) -> Tensor:
        if name != "kernel":
            return value
        return value.permute(2, 3, 0, 1).reshape(self._in_channels * self.depth_multiplier, 1, *self.kernel_size)

    def create_weights(self, input_shape: Shape) -> None:
        self._in_channels = input_shape[-1]
        field = math.prod(self.kernel_size)
        self.add_weight(
            "kernel",
            (self._in_channels * self.depth_multiplier, 1, *self.kernel_size),
            self.depthwise_initializer,
            fan_in=field * self._in_channels,
            fan_out=field * self.depth_multiplier,
        )
        super().create_weights(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": self.depthwise_initializer,
        }


@register_layer
class PatchWhitening(_Conv):
    """A convolution whose filters are fitted to the images by adapt() and then stay fixed: the
    eigenvectors of the covariance of the kernel_size patches, each scaled by 1/√(eigenvalue +
    epsilon), and their negatives, so that its 2·kh·kw·channels outputs are decorrelated with unit
    variance and an activation after it loses no direction. The fast CIFAR-10 trainers (airbench,
    hlb-CIFAR10) start with it. The filters are a non-trainable weight, saved with the model; the
    bias trains, from the value that centres the outputs on the data adapt() saw.

    Example:
        >>> whiten = PatchWhitening(2)
        >>> whiten.compute_output_shape((32, 32, 3))
        (31, 31, 24)
        >>> whiten.adapt(np.random.default_rng(0).random((64, 32, 32, 3)))
        >>> whiten(torch.rand(8, 3, 32, 32)).shape
        torch.Size([8, 24, 31, 31])
    """

    rank = 2

    def __init__(
        self,
        kernel_size: int | tuple[int, ...] = 2,
        epsilon: float = 5e-4,
        strides: int | tuple[int, ...] = 1,
        padding: str = "valid",
        activation: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(kernel_size, strides, padding, 1, activation, True, "zeros", **kwargs)
        self.epsilon = number("PatchWhitening", "epsilon", epsilon, low=0.0)

    @property
    def adapted(self) -> bool:
        """Whether adapt() has fitted the filters (here, or before the model was saved)."""
        return self.built and bool(self.kernel.any())

    def output_channels(self, in_channels: int) -> int:
        return 2 * math.prod(self.kernel_size) * in_channels

    def create_weights(self, input_shape: Shape) -> None:
        self.add_state("kernel", (self.output_channels(input_shape[-1]), input_shape[-1], *self.kernel_size), "zeros")
        super().create_weights(input_shape)

    def adapt(self, data: Any, batch_size: int = 256) -> None:
        """Fit the filters to images (N, H, W, C), as they arrive at this layer (after any
        rescaling). Patches are taken where they fit inside the image, with every padding."""
        images = torch.as_tensor(np.asarray(data))
        if images.dim() != 4 or images.shape[0] == 0:
            raise self.shape_error(
                tuple(images.shape), "adapt() takes a batch of images", "Pass an array (N, height, width, channels)."
            )
        self.build(tuple(images.shape[1:]))
        self.adapt_channels_first(images[start : start + batch_size].permute(0, 3, 1, 2)
                                  for start in range(0, images.shape[0], batch_size))  # fmt: skip

    @torch.no_grad()
    def adapt_channels_first(self, batches: Iterable[Tensor]) -> None:
        """adapt() for batches of images already in the layout the layer computes in, (n, C, H, W);
        only the patches' sums are kept between batches."""
        size = self.kernel.shape[1] * math.prod(self.kernel_size)
        total, outer, count = torch.zeros(size, dtype=torch.float64), torch.zeros(size, size, dtype=torch.float64), 0
        for batch in batches:
            if any(side < kernel for side, kernel in zip(batch.shape[2:], self.kernel_size)):
                continue  # no patch fits: nothing to count
            # (n, C·kh·kw, positions) in the order of a convolution's (filters, C, kh, kw) weight
            columns = F.unfold(batch.double(), self.kernel_size)
            patches = columns.transpose(1, 2).reshape(-1, size)
            total += patches.sum(0)
            outer += patches.T @ patches
            count += patches.shape[0]
        if count == 0:
            raise ConfigError(
                f"{self.describe()}: adapt() received no images as large as its kernel "
                f"{'x'.join(map(str, self.kernel_size))}. Pass training images."
            )
        mean = total / count
        covariance = outer / count - torch.outer(mean, mean)
        values, vectors = torch.linalg.eigh(covariance)  # ascending
        filters = (vectors / (values.clamp(min=0) + self.epsilon).sqrt()).T.flip(0)  # largest first
        kernel = torch.cat([filters, -filters]).reshape(self.kernel.shape)
        self.kernel.copy_(kernel.to(self.kernel.dtype))
        self.bias.copy_(-(kernel.flatten(1) @ mean).to(self.bias.dtype))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        for fixed in ("dilation_rate", "use_bias", "bias_initializer"):
            del config[fixed]
        return {**config, "epsilon": self.epsilon}
