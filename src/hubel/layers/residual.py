"""Residual: a skip connection, `x + f(x)`, as one layer of a Sequential stack.

Keras writes a residual block with the functional API (`layers.add([x, y])`); hubel keeps the
stack linear and wraps the block's layers instead, so specs, summaries and saved models stay
a list of layers:

    L.Residual([L.Conv2D(64, 3, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU()])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from hubel.errors import ConfigError
from hubel.layers.base import Layer, Shape, layer_from_entry, register_layer

__all__ = ["Residual"]


@register_layer
class Residual(Layer):
    """Adds the input to the output of its layers: x + f(x) (He et al., 2016).

    The layers must keep the input's shape (padding='same', strides 1, as many filters as
    input channels). They are built, counted and saved with this layer; layers may be layer
    objects or spec entries ("ReLU", {"Conv2D": {...}}).

    Example:
        >>> from hubel import layers as L
        >>> block = Residual([L.Conv2D(8, 3, padding="same"), L.ReLU()])
        >>> block.build((6, 6, 8)); block.count_params(), block.output_shape
        (584, (None, 6, 6, 8))
    """

    def __init__(self, layers: Sequence[Layer | dict[str, Any] | str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(layers, (str, dict)) or not isinstance(layers, Sequence) or not layers:
            raise ConfigError(f"Residual: expected a non-empty list of layers. Received: layers={layers!r}")
        body = [
            entry if isinstance(entry, Layer) else layer_from_entry(entry, f"Residual layer {index}")
            for index, entry in enumerate(layers)
        ]
        self.body = nn.ModuleList(body)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = input_shape
        for previous, layer in zip([None, *self.body], self.body):
            layer.after = f"{previous.name} in {self.name}" if previous is not None else self.after
            shape = layer.compute_output_shape(shape)
        if tuple(shape) != tuple(input_shape):
            raise self.shape_error(
                input_shape,
                f"its layers output {tuple(shape)}, and x + f(x) needs f(x) to keep the input's shape",
                f"Inside a Residual use padding='same', strides 1 and {input_shape[-1]} filters.",
            )
        return shape

    def create_weights(self, input_shape: Shape) -> None:
        shape = input_shape
        for layer in self.body:
            layer.build(shape)
            shape = layer._require_built()[1]

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for layer in self.body:
            y = layer(y)
        return x + y

    def macs(self) -> int:
        return sum(layer.macs() for layer in self.body)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.body],
        }
