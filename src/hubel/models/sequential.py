"""Sequential: a stack of layers, built (shapes inferred, weights created) as soon as its
input shape is known, with Keras's vocabulary on a torch.nn.Module.

At its boundary the model speaks Keras's layout: it takes (N, H, W, C) arrays or tensors
(or (N, H, W) for one channel) and returns (N, ..., C). Inside, layers run channels first;
NHWC data becomes channels_last NCHW as a free view. A tensor already in (N, C, H, W) is
also accepted when its shape says so unambiguously.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hubel.errors import ConfigError, ShapeError
from hubel.layers.args import shape_tuple
from hubel.layers.base import (
    Layer,
    Shape,
    internal_to_keras,
    keras_to_internal,
    layer_from_entry,
    tensor_view,
    unique_name,
)
from hubel.layers.core import Input

__all__ = ["Sequential"]


class Sequential(nn.Module):
    """A linear stack of layers.

    Example:
        >>> from hubel import layers as L
        >>> model = Sequential([L.Input((28, 28, 1)), L.Conv2D(8, 3), L.Flatten(), L.Dense(10)])
        >>> model.output_shape, model.count_params()
        ((None, 10), 54170)
    """

    def __init__(self, layers: Iterable[Layer | Input] | None = None, name: str | None = None) -> None:
        super().__init__()
        self.name: str = name or unique_name("sequential")
        self._model_input_shape: Shape | None = None
        #: free-form facts saved with the model (class names, preprocessing, training metrics)
        self.metadata: dict[str, Any] = {}
        for layer in layers or []:
            self.add(layer)

    # ----- building ---------------------------------------------------------------------

    def add(self, layer: Layer | Input) -> None:
        """Append a layer; it is built at once when the model's input shape is known.

        A layer that cannot take its input raises ShapeError and leaves the model unchanged.
        """
        if isinstance(layer, Input):
            if self.layers or self._model_input_shape is not None:
                raise ConfigError(f"Sequential {self.name!r}: an Input must come first, before any layer.")
            self._model_input_shape = layer.shape
            return
        if not isinstance(layer, Layer):
            raise ConfigError(
                f"Sequential {self.name!r}: expected a hubel layer (from hubel.layers). Received: {layer!r}"
            )
        self._check_name(layer.name)
        declared = layer.declared_input_shape
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
            if declared is not None and self.layers and declared != incoming:
                raise ShapeError(
                    f"{layer.describe()}: input_shape={declared}, but the layer before it "
                    f"({self.layers[-1].name}) outputs {incoming}. Drop input_shape from layers after the first."
                )
            layer.build(incoming)
        self.add_module(layer.name, layer)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not self.layers:
            raise ConfigError(f"Sequential {self.name!r} has no layers to pop.")
        name = next(reversed(self._modules))
        return self._modules.pop(name)  # type: ignore[return-value]

    def build(self, input_shape: Any) -> None:
        """Build every layer for `input_shape`, with or without the batch axis: (None, 28, 28, 1)."""
        shape = tuple(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        shape = shape_tuple(f"Sequential {self.name!r}", "input_shape", shape)
        if self._model_input_shape is not None and self._model_input_shape != shape and self.built:
            raise ShapeError(
                f"Sequential {self.name!r} is built for input shape {self._model_input_shape}; received {shape}. "
                f"Create a new model for another input shape."
            )
        incoming: Shape = shape
        for previous, layer in zip([None, *self.layers], self.layers):
            layer.after = previous.name if previous else None
            incoming = layer.compute_output_shape(incoming)  # every shape checked before any weight exists
        incoming = shape
        for layer in self.layers:
            layer.build(incoming)
            incoming = layer._require_built()[1]
        self._model_input_shape = shape

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
        if hasattr(self, name):
            raise ConfigError(
                f"Sequential {self.name!r}: the layer name {name!r} is also an attribute of Sequential. "
                f"Pass another `name=`."
            )

    # ----- Keras-style properties ---------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        return list(self._modules.values())  # type: ignore[arg-type]

    @property
    def built(self) -> bool:
        return self._model_input_shape is not None and all(layer.built for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return (None, *self._require_input_shape())

    @property
    def output_shape(self) -> tuple[int | None, ...]:
        shape = self._current_shape()
        if shape is None or not self.built:
            self._require_input_shape()
        return (None, *(shape or ()))

    @property
    def trainable(self) -> bool:
        return any(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            layer.trainable = value

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index, as in Keras."""
        if index is not None:
            try:
                return self.layers[index]
            except IndexError:
                raise ConfigError(
                    f"Sequential {self.name!r} has {len(self.layers)} layers; no index {index}."
                ) from None
        if name in self._modules:
            return self._modules[name]  # type: ignore[return-value]
        from hubel.registry import Registry

        names: Registry[Layer] = Registry("layer name", "model.summary()")
        for layer in self.layers:
            names.register(layer.name)(layer)
        return names.get(name or "")

    def count_params(self) -> int:
        """All weights as Keras counts them (BN moving statistics included)."""
        self._require_input_shape()
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn: Callable[[str], Any] | None = None) -> None:
        """Print Keras's summary table with MACs and memory columns; print_fn gets one line at a time."""
        from hubel.models.summary import render_summary, summarize

        for line in render_summary(summarize(self)).splitlines():
            (print_fn or print)(line)

    # ----- training (delegated to the engine in hubel.train) --------------------------------

    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        metrics: Sequence[Any] = (),
        device: str = "auto",
        mixed_precision: str | None = None,
        jit_compile: bool = False,
    ) -> None:
        """Choose optimizer, loss and metrics, as in Keras: compile(optimizer="adam",
        loss="sparse_categorical_crossentropy", metrics=["accuracy"]). device="auto" picks CUDA,
        then MPS, then the CPU; mixed_precision="bf16", "fp16" (CUDA), "auto" (bf16 where the
        hardware runs it fast) and jit_compile=True (torch.compile) are opt-in."""
        from hubel.train.trainer import Trainer

        if loss is None:
            raise ConfigError(
                "compile needs a loss, e.g. loss='sparse_categorical_crossentropy'. See hubel.train.list_losses()."
            )
        self._require_input_shape()
        self.__dict__["_trainer"] = Trainer(self, optimizer, loss, metrics, device, mixed_precision, jit_compile)

    @property
    def trainer(self) -> Any:
        """The training engine made by compile()."""
        trainer = self.__dict__.get("_trainer")
        if trainer is None:
            raise ConfigError(
                f"Sequential {self.name!r} is not compiled: call model.compile(optimizer=..., loss=...) first."
            )
        return trainer

    @property
    def optimizer(self) -> Any:
        """The optimizer; `model.optimizer.learning_rate = 1e-4` changes the rate, also between fits."""
        return self.trainer.optimizer

    def fit(self, x: Any, y: Any = None, **options: Any) -> Any:
        """Train, as Keras's fit: batch_size=32, epochs=1, verbose, callbacks, validation_split (the
        last fraction) or validation_data, shuffle, class_weight (a dict or "balanced"),
        initial_epoch; plus checkpoint_dir, checkpoint_every (steps), resume, resume_from.
        Returns a History. Calling fit again continues training from the current weights."""
        return self.trainer.fit(x, y, **options)

    def lr_find(self, x: Any, y: Any = None, **options: Any) -> Any:
        """The learning-rate range test: returns a LearningRateCurve (rates, losses, suggestion);
        the model and optimizer are left as they were. See hubel.train.lr_find."""
        from hubel.train.lr_find import find_learning_rate

        return find_learning_rate(self.trainer, x, y, **options)

    def evaluate(self, x: Any, y: Any = None, batch_size: int = 32, verbose: int | str = "auto") -> Any:
        """The loss, or [loss, *metrics] when compiled with metrics."""
        return self.trainer.evaluate(x, y, batch_size=batch_size, verbose=verbose)

    def predict(self, x: Any, batch_size: int = 32) -> np.ndarray:
        """Outputs for every example, as a NumPy array (works without compile)."""
        from hubel.train.trainer import Trainer

        trainer = self.__dict__.get("_trainer")
        if trainer is None:
            parameter = next(self.parameters(), None)
            trainer = Trainer(self, loss="mse", device=str(parameter.device) if parameter is not None else "cpu")
        return trainer.predict(x, batch_size=batch_size)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write a .hubel model file (architecture + safetensors weights); see hubel.load_model."""
        from hubel.models.io import save_model

        return save_model(self, path, metadata)

    # ----- config -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": None if self._model_input_shape is None else list(self._model_input_shape),
            "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuild a model from get_config()'s output (the canonical spec format)."""
        model = cls(name=config.get("name"))
        if config.get("input_shape") is not None:
            model.add(Input(tuple(config["input_shape"])))
        for index, entry in enumerate(config.get("layers", [])):
            model.add(layer_from_entry(entry, f"layer {index}"))
        return model

    # ----- forward ----------------------------------------------------------------------

    def forward(self, x: Tensor | np.ndarray) -> Tensor:  # (N, H, W, C) -> (N, ..., C)
        x = self._to_internal(x)
        for layer in self._modules.values():
            x = layer(x)
        output = internal_to_keras(x)
        logits = getattr(x, "_hubel_logits", None)
        if logits is not None and output is not x:
            output._hubel_logits = internal_to_keras(logits)  # type: ignore[attr-defined]
        return output

    def _to_internal(self, x: Tensor | np.ndarray) -> Tensor:
        """Accept Keras-layout (or unambiguous torch-layout) data and return channels-first tensors."""
        if not isinstance(x, Tensor):
            x = tensor_view(np.asarray(x))
        first = next(iter(self._modules.values()), None)  # no list of layers per call: this is the hot path
        if not (first is not None and first.accepts_integers) and not x.is_floating_point():
            x = x.float()
        elif x.dtype == torch.float64:
            x = x.float()
        parameter = next(self.parameters(), None)
        if parameter is not None and x.device != parameter.device:
            x = x.to(parameter.device)
        if self._model_input_shape is None:
            self.build(tuple(x.shape[1:]))
        expected = self._require_input_shape()
        per_example = tuple(x.shape[1:])
        if per_example == expected:
            return _canonical(keras_to_internal(x))
        if len(expected) == 3 and expected[-1] == 1 and per_example == expected[:-1]:
            return _canonical(keras_to_internal(x.unsqueeze(-1)))  # (N, H, W) grayscale
        if len(expected) > 1 and per_example == (expected[-1], *expected[:-1]):
            return x  # already channels first
        raise ShapeError(
            f"Sequential {self.name!r} takes examples of shape {expected} (channels last); received a batch of "
            f"shape {tuple(x.shape)}. Resize or reshape the data, or build a model for this shape."
        )

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


def _canonical(x: Tensor) -> Tensor:
    """Give NHWC bytes the standard channels_last strides (size-1 axes may carry any stride, which
    would send equal data down different convolution kernels); a view, no copy."""
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
        return x
    _, c, h, w = x.shape
    strides = (h * w * c, 1, w * c, c)
    return x if x.stride() == strides else x.as_strided(x.shape, strides)
