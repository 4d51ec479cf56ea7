"""Sequential: the linear case of a Model — a stack of layers, built (shapes inferred, weights
created) as soon as its input shape is known.

At its boundary the model speaks Keras's layout: it takes (N, H, W, C) arrays or tensors
(or (N, H, W) for one channel) and returns (N, ..., C). Inside, layers run channels first;
NHWC data becomes channels_last NCHW as a free view. A tensor already in (N, C, H, W) is
also accepted when its shape says so unambiguously. Everything else (compile, fit, predict,
summary, save, nesting inside other models) is Model's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from hubel.errors import ConfigError, ShapeError
from hubel.layers.args import shape_tuple
from hubel.layers.base import Layer, Shape, layer_from_entry, register_layer
from hubel.layers.core import Input, InputLayer
from hubel.layers.symbolic import SymbolicTensor
from hubel.layers.weights import name_scope
from hubel.models.model import Model, check_layer_name, class_name, register_module

__all__ = ["Sequential"]


@register_layer
class Sequential(Model):
    """A linear stack of layers.

    Example:
        >>> from hubel import layers as L
        >>> model = Sequential([L.Input((28, 28, 1)), L.Conv2D(8, 3), L.Flatten(), L.Dense(10)])
        >>> model.output_shape, model.count_params()
        ((None, 10), 54170)
    """

    kind = "Sequential"

    def __init__(
        self, layers: Iterable[Layer | Input] | None = None, name: str | None = None, trainable: bool = True
    ) -> None:
        super().__init__(name=name, trainable=trainable)
        self._model_input_shape: Shape | None = None
        self._single_input = self._single_output = True
        self._given_input: SymbolicTensor | None = None  # the Input the model started with, if any
        self._trace: list[SymbolicTensor] = []  # the Input, then each layer's symbolic output
        for layer in layers or []:
            self.add(layer)

    # ----- building ---------------------------------------------------------------------

    def add(self, layer: Layer | Input) -> None:
        """Append a layer (or a whole model); it is built at once when the model's input shape is known.

        A layer that cannot take its input raises ShapeError and leaves the model unchanged.
        """
        if isinstance(layer, SymbolicTensor):
            if not (layer.producer is not None and isinstance(layer.producer.layer, InputLayer)):
                raise ConfigError(
                    f"Sequential {self.name!r}: expected a layer or an Input; {layer.name!r} is the output of a "
                    f"layer call. Add the layer itself, or build a hubel.Model(inputs, outputs) instead."
                )
            if self.layers or self._model_input_shape is not None:
                raise ConfigError(f"Sequential {self.name!r}: an Input must come first, before any layer.")
            self._model_input_shape, self._given_input = layer.example_shape, layer
            return
        if not isinstance(layer, Layer):
            raise ConfigError(
                f"Sequential {self.name!r}: expected a hubel layer (from hubel.layers). Received: {layer!r}"
            )
        self._check_name(layer.name)
        declared = layer.declared_input_shape
        if declared is None and isinstance(layer, Model) and not isinstance(layer, Sequential):
            declared = layer._input_shape  # a functional model brings its input shape
        if declared is not None and not self.layers:
            if self._model_input_shape is not None and declared != self._model_input_shape:
                raise ShapeError(
                    f"{layer.describe()}: input_shape={declared} disagrees with the model's Input shape "
                    f"{self._model_input_shape}. Give the shape once."
                )
            self._model_input_shape = declared
        layer.after = self.layers[-1].name if self.layers else None
        incoming = self._current_shape()
        if incoming is not None:
            if layer.declared_input_shape is not None and self.layers and layer.declared_input_shape != incoming:
                raise ShapeError(
                    f"{layer.describe()}: input_shape={declared}, but the layer before it "
                    f"({self.layers[-1].name}) outputs {incoming}. Drop input_shape from layers after the first."
                )
            with name_scope(self.name):  # Keras builds a Sequential's layers in its name scope
                layer.build(incoming)
        register_module(self, layer)
        if incoming is not None and len(self._trace) == len(self.layers):  # the rest is traced: extend it
            self._trace_call(layer)
        elif incoming is not None:
            self._trace_layers()

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self.layers:
            raise ConfigError(f"Sequential {self.name!r} has no layers to pop.")
        name = next(reversed(self._modules))
        layer: Layer = self._modules.pop(name)  # type: ignore[assignment]
        self._trace_layers()
        return layer

    def _trace_layers(self) -> None:
        """Call the layers on symbolic tensors, from the model's Input, as Keras's Sequential builds
        its graph: model.inputs and model.outputs, and each layer's input and output, then exist."""
        for tensor in self._trace[1:]:  # the calls of an earlier trace
            layer = tensor.producer.layer  # type: ignore[union-attr]
            layer._inbound_nodes = [node for node in layer._inbound_nodes if node is not tensor.producer]
        self._trace = []
        if self._model_input_shape is None or not self.built:
            return
        if self._given_input is None or self._given_input.example_shape != self._model_input_shape:
            self._given_input = Input(self._model_input_shape)
        self._trace = [self._given_input]
        for layer in self.layers:
            self._trace_call(layer)

    def _trace_call(self, layer: Layer) -> None:
        after = layer.after  # the model's own account of what feeds the layer, for its errors
        self._trace.append(layer._call_symbolic(self._trace[-1], None))
        layer.after = after

    def build(self, input_shape: Any) -> None:
        """Build every layer for `input_shape`, with or without the batch axis: (None, 28, 28, 1)."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        shape = shape_tuple(f"Sequential {self.name!r}", "input_shape", shape)
        if self._model_input_shape is not None and self._model_input_shape != shape and self.built:
            after = f" (after {self.after})" if self.after else ""
            raise ShapeError(
                f"Sequential {self.name!r} is built for input shape {self._model_input_shape}; received "
                f"{shape}{after}. Create a new model for another input shape."
            )
        incoming: Shape = shape
        for previous, layer in zip([None, *self.layers], self.layers):
            layer.after = previous.name if previous else None
            incoming = layer.compute_output_shape(incoming)  # every shape checked before any weight exists
        incoming = shape
        with name_scope(self.name):
            for layer in self.layers:
                layer.build(incoming)
                incoming = layer._require_built()[1]
        self._model_input_shape = shape
        self._trace_layers()

    def _current_shape(self) -> Shape | None:
        if self._model_input_shape is None:
            return None
        return self.layers[-1]._require_built()[1] if self.layers else self._model_input_shape

    def _check_name(self, name: str) -> None:
        if name in self._modules:
            raise ConfigError(
                f"Sequential {self.name!r}: layer names must be unique; {name!r} is already the name of a layer "
                f"in this model. Pass another `name=`."
            )
        check_layer_name(self, name)

    # ----- Keras-style properties ---------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        return list(self._modules.values())  # type: ignore[arg-type]

    @property
    def inputs(self) -> list[SymbolicTensor]:
        """[the Input], as Keras's `model.inputs` (the model needs its input shape)."""
        self._require_input_shape()
        return self._trace[:1]

    @property
    def outputs(self) -> list[SymbolicTensor]:
        """[the last layer's symbolic output], as Keras's `model.outputs`."""
        self._require_input_shape()
        return self._trace[-1:]

    @property
    def built(self) -> bool:
        return self._model_input_shape is not None and all(layer.built for layer in self.layers)

    @built.setter
    def built(self, value: bool) -> None:
        pass  # derived from the layers

    @property
    def _keeps_integers(self) -> list[bool]:  # type: ignore[override]
        first = next(iter(self._modules.values()), None)  # no list of layers per call: this is the hot path
        return [bool(first is not None and (first.accepts_integers or any(getattr(first, "_keeps_integers", ()))))]

    @property
    def _vectorizers(self) -> list[Layer | None]:  # type: ignore[override]
        first = next(iter(self._modules.values()), None)
        return [first if getattr(first, "accepts_strings", False) else None]

    def _input_example_shape(self, index: int) -> Shape:
        vectorizer = self._vectorizers[0]
        return vectorizer._require_built()[1] if vectorizer is not None else self._require_input_shape()

    @property
    def _input_shape(self) -> Shape:  # type: ignore[override]
        return self._require_input_shape()

    @_input_shape.setter
    def _input_shape(self, value: Any) -> None:
        pass  # derived from the layers

    @property
    def _output_shape(self) -> Shape | None:  # type: ignore[override]
        return self._current_shape()

    @_output_shape.setter
    def _output_shape(self, value: Any) -> None:
        pass  # derived from the layers

    def _require_built(self) -> tuple[Shape, Shape]:
        shape = self._require_input_shape()
        return shape, self._current_shape() or shape

    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    # ----- config -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name,
            "input_shape": None if self._model_input_shape is None else list(self._model_input_shape),
            "layers": [{"class_name": class_name(layer), "config": layer.get_config()} for layer in self.layers],
        }
        if not self.trainable:
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a model from get_config()'s output (the canonical spec format)."""
        model = cls(name=config.get("name"))
        if config.get("input_shape") is not None:
            model.add(Input(tuple(config["input_shape"])))
        for index, entry in enumerate(config.get("layers", [])):
            model.add(layer_from_entry(entry, f"layer {index}"))
        if config.get("trainable") is False:
            model.trainable = False
        return model

    # ----- forward ----------------------------------------------------------------------

    def forward(self, x: Any, internal: bool = False) -> Any:  # (N, H, W, C) -> (N, ..., C)
        if not internal and self._model_input_shape is None:
            self.build(tuple(x.shape[1:]))
        return super().forward(x, internal)

    def _run(self, inputs: list[Tensor]) -> list[Tensor]:
        x = inputs[0]
        for layer in self._modules.values():
            x = layer(x, internal=True) if isinstance(layer, Model) else layer(x)
        return [x]

    def _boundary_in(self, x: Any) -> list[Tensor]:
        x = self.encode_inputs(x)
        return [self._to_internal(x, self._input_example_shape(0), self._keeps_integers[0])]

    def _require_input_shape(self) -> Shape:
        if self._model_input_shape is None or not self.built:
            raise ShapeError(
                f"Sequential {self.name!r} is not built yet: its input shape is unknown. Pass input_shape=... to "
                f"the first layer, start with hubel.layers.Input(shape=...), or call model.build((None, H, W, C))."
            )
        return self._model_input_shape

    def extra_repr(self) -> str:
        shape = self._model_input_shape
        return f"name={self.name!r}" + (f", input_shape={shape}" if shape else "")
