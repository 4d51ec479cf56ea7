"""Core layers: Input, Dense, Flatten, Reshape, Dropout, Activation, ReLU, LeakyReLU,
Rescaling, ZeroPadding2D."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError
from hubel.layers import window
from hubel.layers.activations import get_activation
from hubel.layers.args import (
    axis_position,
    channels_first_axis,
    fraction,
    integer_tuple,
    keras_axis,
    number,
    positive_int,
    shape_tuple,
)
from hubel.layers.base import Layer, Shape, internal_to_keras, keras_to_internal, register_layer, unique_name
from hubel.layers.inference import linear_for_inference
from hubel.layers.initializers import INITIALIZERS
from hubel.layers.symbolic import Node, SymbolicTensor

__all__ = [
    "Activation",
    "Dense",
    "Dropout",
    "Flatten",
    "Input",
    "InputLayer",
    "LeakyReLU",
    "ReLU",
    "Rescaling",
    "Reshape",
    "Softmax",
    "ZeroPadding2D",
]


class Input(SymbolicTensor):
    """A model input: the per-example shape (channels last, batch excluded), as Keras's
    `keras.Input`. It starts a Sequential (`Sequential([Input((28, 28, 1)), ...])`) or a
    functional graph (`x = Input((160, 160, 3)); y = layer(x); hubel.Model(x, y)`).

    dtype: None (floats; token ids when the first layer is an Embedding), "float32", "int64", or
    "string" for raw text read by a TextVectorization (shape (1,)).

    Example:
        >>> Input(shape=(28, 28, 1)).shape
        (None, 28, 28, 1)
    """

    def __init__(
        self, shape: Any, batch_size: int | None = None, name: str | None = None, dtype: str | None = None
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise ConfigError(f"Input: expected `name` to be letters, digits and underscores. Received: name={name!r}")
        if dtype not in (None, "float32", "int32", "int64", "string"):
            raise ConfigError(
                f"Input: expected `dtype` None, 'float32', 'int32', 'int64' or 'string'. Received: dtype={dtype!r}"
            )
        super().__init__(shape_tuple("Input", "shape", shape), name or unique_name("input_layer"), dtype=dtype)
        self.batch_size = None if batch_size is None else positive_int("Input", "batch_size", batch_size)
        layer = InputLayer(shape=self.example_shape, dtype=dtype, name=self.name)
        self.producer = Node(layer, [], as_list=False, outputs=[self])

    def __repr__(self) -> str:
        return f"Input(shape={self.example_shape}, name={self.name!r})"


@register_layer
class InputLayer(Layer):
    """The layer behind an Input: no weights, the identity; a functional model lists it first
    in `model.layers` and in its summary, as Keras does. Create inputs with Input(shape)."""

    def __init__(self, shape: Any, dtype: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shape = shape_tuple("InputLayer", "shape", shape)
        self.dtype = dtype
        self.build(self.shape)

    def forward(self, x: Tensor) -> Tensor:
        return x

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@register_layer
class Dense(Layer):
    """Fully connected layer on the last axis: y = activation(x · W + b).

    Example:
        >>> Dense(128, activation="relu").compute_output_shape((1600,))
        (128,)
        >>> Dense(8).compute_output_shape((10, 32))  # acts on the last axis
        (10, 8)
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = positive_int("Dense", "units", units)
        self.activation, self._activation_fn = get_activation(activation, in_place=True)  # on its fresh output
        self.use_bias = bool(use_bias)
        INITIALIZERS.get(kernel_initializer)
        INITIALIZERS.get(bias_initializer)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:-1], self.units)

    def create_weights(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        self.add_weight("kernel", (self.units, features), self.kernel_initializer, fan_in=features, fan_out=self.units)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        else:
            self.register_parameter("bias", None)

    def keras_weight(self, name: str, value: Tensor) -> Any:
        return super().keras_weight(name, value.T if name == "kernel" else value)  # (units, in) -> (in, units)

    def internal_weight(self, name: str, value: Tensor) -> Tensor:
        return value.T if name == "kernel" else value

    def forward(self, x: Tensor) -> Tensor:  # (N, F) -> (N, units); (N, C, ...) acts on C
        if x.dim() == 2:
            fused = linear_for_inference(x, self.kernel, self.bias, self.activation)
            return fused if fused is not None else self._activation_fn(F.linear(x, self.kernel, self.bias))
        y = F.linear(internal_to_keras(x), self.kernel, self.bias)
        return self._activation_fn(keras_to_internal(y))

    def macs(self) -> int:
        input_shape, _ = self._require_built()
        return math.prod(input_shape) * self.units

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


@register_layer
class Flatten(Layer):
    """Flatten each example in Keras's (H, W, C) order, so Dense weights match Keras's.

    Example:
        >>> Flatten().compute_output_shape((5, 5, 64))
        (1600,)
    """

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, H·W·C)
        return internal_to_keras(x).reshape(x.shape[0], -1)


@register_layer
class Reshape(Layer):
    """Reshape each example (Keras layout); one axis may be -1.

    Example:
        >>> Reshape((28, 28, 1)).compute_output_shape((784,))
        (28, 28, 1)
    """

    def __init__(self, target_shape: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        items = tuple(target_shape) if isinstance(target_shape, (list, tuple)) else (target_shape,)
        sizes_ok = all(
            isinstance(size, int) and not isinstance(size, bool) and (size >= 1 or size == -1) for size in items
        )
        if not items or not sizes_ok or items.count(-1) > 1:
            raise ConfigError(
                f"Reshape: expected `target_shape` to be a tuple of positive sizes with at most one -1, "
                f"batch excluded. Received: target_shape={target_shape!r}"
            )
        self.target_shape: Shape = items

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        total = math.prod(input_shape)
        known = math.prod(size for size in self.target_shape if size != -1)
        if -1 in self.target_shape and total % known == 0:
            return tuple(total // known if size == -1 else size for size in self.target_shape)
        if known == total:
            return self.target_shape
        raise self.shape_error(
            input_shape,
            f"{total} values per example cannot be reshaped to {self.target_shape}",
            "Choose a target_shape whose sizes multiply to the same number of values (or use -1 once).",
        )

    def forward(self, x: Tensor) -> Tensor:
        _, output_shape = self._require_built()
        return keras_to_internal(internal_to_keras(x).reshape(x.shape[0], *output_shape))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register_layer
class Dropout(Layer):
    """Zero a fraction `rate` of values while training (scaling the rest); identity otherwise.

    Example:
        >>> Dropout(0.5).compute_output_shape((128,))
        (128,)
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rate = fraction("Dropout", "rate", rate)
        self.seed = seed

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.rate, self.training) if self.rate else x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register_layer
class Activation(Layer):
    """An activation by name as a layer of its own.

    Example:
        >>> Activation("softmax").compute_output_shape((10,))
        (10,)
    """

    def __init__(self, activation: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activation, self._activation_fn = get_activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self._activation_fn(x)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self.activation}


@register_layer
class Softmax(Layer):
    """Probabilities along `axis` (Keras's layout with the batch axis first; -1, the default, is
    the channels axis), as Keras's Softmax layer: the TensorFlow tutorial's
    `probability_model = Sequential([model, Softmax()])` over a model that outputs logits.

    Example:
        >>> Softmax().compute_output_shape((10,))
        (10,)
    """

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = keras_axis("Softmax", axis)
        self._internal_axis = 1
        _, self._channel_softmax = get_activation("softmax")

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rank = len(input_shape)
        position = axis_position(self.axis, rank)
        if position is None:
            raise self.shape_error(
                input_shape,
                f"axis={self.axis} is outside an input of rank {rank} (plus the batch axis)",
                "Use axis=-1.",
            )
        self._internal_axis = channels_first_axis(position, rank)
        return tuple(input_shape)

    def forward(self, x: Tensor) -> Tensor:
        if self._internal_axis == 1:  # the channels: the softmax activation, which a loss reads as logits
            return self._channel_softmax(x)
        return F.softmax(x, dim=self._internal_axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


@register_layer
class ReLU(Layer):
    """Keras's ReLU: x above threshold (capped at max_value), negative_slope·(x − threshold) at or
    below it (so 0 at the threshold itself, as Keras's `x > threshold`).

    Example:
        >>> ReLU(6.0).max_value  # MobileNet's ReLU6
        6.0
    """

    def __init__(
        self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else number("ReLU", "max_value", max_value, low=0.0)
        self.negative_slope = number("ReLU", "negative_slope", negative_slope, low=0.0)
        self.threshold = number("ReLU", "threshold", threshold)

    def forward(self, x: Tensor) -> Tensor:
        if self.negative_slope == 0.0 and self.threshold == 0.0:
            return F.relu(x) if self.max_value is None else F.hardtanh(x, 0.0, self.max_value)
        slope, threshold, top = self.negative_slope, self.threshold, self.max_value
        if threshold == 0.0 and top is None:
            return F.leaky_relu(x, slope)  # Keras's leaky_relu: the gradient at 0 is the slope
        # Keras's composition, whose gradient at x == threshold is 0: the positive part (clipped to
        # [0, max_value]) minus slope · relu(threshold − x)
        y = x * (x > threshold) if threshold != 0.0 else F.relu(x)
        if top is not None:
            y = y.clamp(0.0, top)
        return y - slope * F.relu(threshold - x) if slope else y

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


@register_layer
class LeakyReLU(Layer):
    """x for x ≥ 0, negative_slope·x otherwise (Keras default slope 0.3).

    Example:
        >>> LeakyReLU().negative_slope
        0.3
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = number("LeakyReLU", "negative_slope", negative_slope, low=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register_layer
class Rescaling(Layer):
    """x · scale + offset: puts preprocessing inside the model, e.g. Rescaling(1/255).

    scale and offset are numbers, or one number per channel (Keras 3): ImageNet's
    normalisation of raw pixels is Rescaling([1 / (255 · std_c)], offset=[−mean_c / std_c]).

    Example:
        >>> Rescaling(1 / 127.5, offset=-1).compute_output_shape((160, 160, 3))
        (160, 160, 3)
    """

    def __init__(self, scale: float | list[float], offset: float | list[float] = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = _number_or_list("scale", scale)
        self.offset = _number_or_list("offset", offset)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            if isinstance(value, list) and len(value) not in (1, input_shape[-1]):
                raise self.shape_error(
                    input_shape,
                    f"{name} has {len(value)} values, one per channel, but the input has {input_shape[-1]} channels",
                    f"Give one number, or {input_shape[-1]}.",
                )
        return input_shape

    def forward(self, x: Tensor) -> Tensor:  # (N, C, ...): a per-channel list broadcasts over C
        y = x * self._constant(self.scale, x)
        return y + self._constant(self.offset, x) if self.offset else y

    @staticmethod
    def _constant(value: float | list[float], x: Tensor) -> float | Tensor:
        if not isinstance(value, list):
            return value
        return torch.tensor(value, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.dim() - 2)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _number_or_list(name: str, value: Any) -> float | list[float]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"Rescaling: expected `{name}` to be a number or a list of numbers. Received: []")
        return [number("Rescaling", name, item) for item in value]
    return number("Rescaling", name, value)


@register_layer
class ZeroPadding2D(Layer):
    """Zero rows and columns around each image: an int, (height_pad, width_pad) or
    ((top, bottom), (left, right)).

    Example:
        >>> ZeroPadding2D(((0, 1), (0, 1))).compute_output_shape((112, 112, 32))
        (113, 113, 32)
    """

    def __init__(self, padding: Any = (1, 1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            isinstance(padding, (list, tuple))
            and len(padding) == 2
            and all(isinstance(item, (list, tuple)) for item in padding)
        ):
            pairs = tuple(integer_tuple("ZeroPadding2D", "padding", item, 2, minimum=0) for item in padding)
        else:
            height, width = integer_tuple("ZeroPadding2D", "padding", padding, 2, minimum=0)
            pairs = ((height, height), (width, width))
        self.padding: tuple[tuple[int, int], tuple[int, int]] = pairs  # type: ignore[assignment]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        height, width, channels = self.expect_rank(input_shape, 3, "(height, width, channels)")
        (top, bottom), (left, right) = self.padding
        return (height + top + bottom, width + left + right, channels)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H + t + b, W + l + r)
        return window.pad(x, self.padding)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": [list(pair) for pair in self.padding]}
