"""Model: a graph of layers from inputs to outputs (Keras's functional API), and the API every
model shares — compile, fit, evaluate, predict, summary, save. Sequential is the linear case.

    inputs = L.Input(shape=(160, 160, 3))
    x = L.Conv2D(16, 3, activation="relu")(inputs)
    outputs = L.Dense(2, activation="softmax")(L.GlobalAveragePooling2D()(x))
    model = hubel.Model(inputs, outputs)

A model is also a layer: `outputs = head(base(inputs))` nests one model in another. At its
boundary a model takes Keras-layout data (NHWC numpy arrays or tensors, uint8 or float) and
returns Keras-layout outputs; inside, tensors are channels first in channels_last memory (the
same bytes, so the conversion is free), and a nested model passes them on unconverted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hubel.errors import ConfigError, ShapeError
from hubel.layers.base import (
    LAYERS,
    Layer,
    Shape,
    as_shape,
    canonical_channels_last,
    internal_to_keras,
    keras_to_internal,
    layer_from_entry,
    register_layer,
    tensor_view,
    unique_name,
)
from hubel.layers.core import Input, InputLayer
from hubel.layers.symbolic import Node, SymbolicTensor
from hubel.registry import Registry

__all__ = ["Model", "class_name", "walk_layers"]


class _Captured(Exception):
    """Model.adapt's way out of a forward pass once the layer it fits has seen its input."""


@dataclass(frozen=True)
class _Step:
    """One node of the graph, compiled for the forward pass: slots index a list of tensors."""

    layer: Layer
    inputs: tuple[int, ...]
    as_list: bool
    outputs: tuple[int, ...]
    training: bool | None


class Model(Layer):
    """A functional model: the layers between `inputs` and `outputs` (symbolic tensors).

    Example:
        >>> from hubel import layers as L
        >>> inputs = L.Input((5, 5, 1024))
        >>> x = L.Dense(256, activation="relu")(L.Flatten()(inputs))
        >>> outputs = L.Dense(1, activation="sigmoid")(L.Dropout(0.5)(x))
        >>> Model(inputs, outputs).count_params()
        6554113
    """

    kind = "Functional"  # the class name in summaries and model files, as Keras's

    def __init__(
        self, inputs: Any = None, outputs: Any = None, name: str | None = None, trainable: bool = True
    ) -> None:
        super().__init__(name=name or unique_name(self.kind.lower()), trainable=trainable)
        #: free-form facts saved with the model (class names, preprocessing, training metrics)
        self.metadata: dict[str, Any] = {}
        self._test_time_augmentation: str | None = None
        self._graph_layers: list[Layer] = []
        if type(self) is Model or inputs is not None or outputs is not None:
            self._build_graph(inputs, outputs)

    @property
    def test_time_augmentation(self) -> str | None:
        """ "flip": predict, evaluate, export and serving give the mean of the outputs for each
        image and its mirror image (left-right), which is worth 1-2 points of accuracy on
        CIFAR-10 for twice the inference; None (the default): the image alone. Training and the
        inspection tools (feature maps, Grad-CAM) see one view. Saved with the model."""
        return self._test_time_augmentation

    @test_time_augmentation.setter
    def test_time_augmentation(self, value: str | None) -> None:
        if value not in (None, "flip"):
            raise ConfigError(
                f"expected test_time_augmentation 'flip' (average each image with its mirror image) or None. "
                f"Received: {value!r}"
            )
        try:
            shapes = self.input_shape
        except ShapeError:  # not built yet: nothing to check against
            shapes = None
        if value is not None and shapes is not None:
            for shape in shapes if isinstance(shapes, list) else [shapes]:
                if len(shape) != 4:
                    raise ConfigError(
                        f"test_time_augmentation={value!r} mirrors images; {self.name!r} takes inputs shaped "
                        f"{shape}, not images (None, height, width, channels)."
                    )
        self._test_time_augmentation = value

    # ----- the graph --------------------------------------------------------------------

    def _build_graph(self, inputs: Any, outputs: Any) -> None:
        self._single_input = isinstance(inputs, SymbolicTensor)
        self._single_output = isinstance(outputs, SymbolicTensor)
        self._inputs: list[SymbolicTensor] = _tensor_list(inputs, "inputs", self.name)
        self._outputs: list[SymbolicTensor] = _tensor_list(outputs, "outputs", self.name)
        for tensor in self._inputs:
            if not _is_input(tensor):
                raise ConfigError(
                    f"Model {self.name!r}: every entry of inputs must be an Input (hubel.layers.Input(shape=...)); "
                    f"{tensor.name!r} is the output of layer {tensor.layer_name!r}."
                )
        self._nodes = _nodes_between(self._inputs, self._outputs, self.name)
        layers: list[Layer] = [tensor.producer.layer for tensor in self._inputs]  # type: ignore[union-attr]
        for node in self._nodes:
            if node.layer not in layers:
                layers.append(node.layer)
        names: dict[str, Layer] = {}
        for layer in layers:
            if names.setdefault(layer.name, layer) is not layer:
                raise ConfigError(
                    f"Model {self.name!r}: two different layers are named {layer.name!r}; layer names must be "
                    f"unique in a model. Pass another `name=` to one of them."
                )
            if not isinstance(layer, InputLayer):
                self._register(layer)
        self._graph_layers = layers
        slots = {id(tensor): index for index, tensor in enumerate(self._inputs)}
        program = []
        for node in self._nodes:
            for tensor in node.outputs:
                slots[id(tensor)] = len(slots)
            program.append(
                _Step(
                    node.layer,
                    tuple(slots[id(tensor)] for tensor in node.inputs),
                    node.as_list,
                    tuple(slots[id(tensor)] for tensor in node.outputs),
                    node.training,
                )
            )
        self._program = program
        self._slot_count = len(slots)
        self._output_slots = [slots[id(tensor)] for tensor in self._outputs]
        self._keeps_integers = [_takes_integers(tensor, self._nodes) for tensor in self._inputs]
        self._vectorizers = [_text_vectorizer(tensor, self._nodes) for tensor in self._inputs]
        shapes = [tensor.example_shape for tensor in self._inputs]
        output_shapes = [tensor.example_shape for tensor in self._outputs]
        self._input_shape = shapes[0] if self._single_input else shapes  # type: ignore[assignment]
        self._output_shape = output_shapes[0] if self._single_output else output_shapes  # type: ignore[assignment]

    def _register(self, layer: Layer) -> None:
        check_layer_name(self, layer.name)
        register_module(self, layer)

    @property
    def built(self) -> bool:
        return True  # a functional model is built when it is made

    @built.setter
    def built(self, value: bool) -> None:
        pass  # derived from the graph (Layer.__init__ sets it)

    def build(self, input_shape: Any) -> None:
        """A functional model's shapes are fixed by its inputs: check that `input_shape` is theirs."""
        shape = list(input_shape)
        if shape and shape[0] is None:
            shape = shape[1:]
        received = as_shape(shape)
        if received != self._input_shape:
            raise ShapeError(
                f"{self.kind} {self.name!r} takes input shape {self._input_shape} (batch excluded); received "
                f"{received}{f' (after {self.after})' if self.after else ''}. Resize the data or the Input, or "
                f"build the model for this shape (e.g. hubel.applications.MobileNetV2(input_shape=...))."
            )

    def build_for(self, x: Any) -> None:
        """Models build from Keras-layout data in forward, not from channels-first shapes."""

    # ----- Keras-style properties ---------------------------------------------------------

    @property
    def layers(self) -> list[Layer]:
        """The layers in the order they run (a functional model's InputLayers first), as in Keras."""
        return list(self._graph_layers)

    @property
    def inputs(self) -> list[SymbolicTensor]:
        return list(self._inputs)

    @property
    def input_count(self) -> int:
        """How many inputs the model takes (fit, evaluate and predict take a list of arrays for several)."""
        return 1 if self._single_input else len(self._inputs)

    @property
    def outputs(self) -> list[SymbolicTensor]:
        return list(self._outputs)

    @property
    def input(self) -> Any:  # type: ignore[override]
        """The model's input tensor (a list for several), as Keras's `model.input`."""
        inputs = self.inputs
        return inputs[0] if self._single_input else inputs

    @property
    def output(self) -> Any:  # type: ignore[override]
        """The model's output tensor (a list for several), as Keras's `model.output`."""
        outputs = self.outputs
        return outputs[0] if self._single_output else outputs

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by index, as in Keras; unknown names suggest the close ones."""
        layers = self.layers
        if index is not None:
            try:
                return layers[index]
            except IndexError:
                raise ConfigError(f"{self.kind} {self.name!r} has {len(layers)} layers; no index {index}.") from None
        names: Registry[Layer] = Registry("layer name", "model.summary()")
        for layer in layers:
            names.register(layer.name)(layer)
        return names.get(name or "")

    def macs(self) -> int:
        """Multiply-accumulates per example: every call of every layer."""
        return sum(step.layer.macs() for step in self._program)

    def summary(
        self,
        line_length: int | None = None,
        positions: Any = None,
        print_fn: Callable[[str], Any] | None = None,
        expand_nested: bool = False,
        show_trainable: bool = False,
        layer_range: Any = None,
    ) -> None:
        """Print Keras's summary table with MACs and memory columns (and "Connected to" for a
        graph that is not a chain); print_fn gets one line at a time. As Keras's: line_length
        (the table's widest), show_trainable (a "Trainable" column: Y, N, or -)."""
        from hubel.models.summary import render_summary, summarize

        unsupported = {"positions": positions, "expand_nested": expand_nested, "layer_range": layer_range}
        given = [f"{key}={value!r}" for key, value in unsupported.items() if value not in (None, False)]
        if given:
            raise ConfigError(
                f"summary: {', '.join(given)} is not supported; hubel's summary takes line_length, print_fn and "
                f"show_trainable. Leave the others out."
            )
        for line in render_summary(summarize(self), show_trainable, line_length).splitlines():
            (print_fn or print)(line)

    def describe(self) -> str:
        return f"{self.kind} {self.name!r}"

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
        hardware runs it fast) and jit_compile=True (torch.compile) are opt-in. Compile again
        after changing which layers are trainable, as in Keras."""
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
                f"{self.kind} {self.name!r} is not compiled: call model.compile(optimizer=..., loss=...) first."
            )
        return trainer

    @property
    def stop_training(self) -> bool:
        """Set to True in a callback to end fit, as Keras's `self.model.stop_training = True`: after
        the current batch (the epoch then closes, with its validation) or epoch."""
        return bool(self.trainer.stop_training)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.trainer.stop_training = bool(value)

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

    def evaluate(
        self, x: Any, y: Any = None, batch_size: int = 32, verbose: int | str = "auto", return_dict: bool = False
    ) -> Any:
        """The loss, or [loss, *metrics] when compiled with metrics; with return_dict, Keras's
        {"loss": ..., "accuracy": ...}."""
        return self.trainer.evaluate(x, y, batch_size=batch_size, verbose=verbose, return_dict=return_dict)

    def predict(self, x: Any, batch_size: int = 32, verbose: int | str = "auto") -> Any:
        """Outputs for every example, as a NumPy array (a list of arrays for a model with several
        outputs, as Keras's; works without compile, and on a model whose layers are all frozen).
        verbose is taken as Keras takes it (0, 1, 2 or "auto"); hubel's predict prints nothing."""
        from hubel.train.trainer import Trainer

        if verbose not in (0, 1, 2, "auto"):
            raise ConfigError(f"predict: expected verbose 0, 1, 2 or 'auto'. Received: verbose={verbose!r}")
        trainer = self.__dict__.get("_trainer")
        if trainer is None:
            parameter = next(self.parameters(), None)
            trainer = Trainer(self, loss="mse", device=str(parameter.device) if parameter is not None else "cpu")
        return trainer.predict(x, batch_size=batch_size)

    def adapt(self, x: Any, batch_size: int = 256) -> list[str]:
        """Fit the layers that learn from the data rather than by gradient (PatchWhitening) to x,
        Keras-layout images, each to what reaches it through the layers before it in inference
        mode; returns their names. hubel train calls it on the training images of a new run.

        Example:
            >>> import hubel, numpy as np
            >>> from hubel import layers as L
            >>> L.clear_session()  # layer names count from 0 again
            >>> model = hubel.Sequential([L.Input((8, 8, 3)), L.Rescaling(1 / 255), L.PatchWhitening(2)])
            >>> model.adapt(np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)))
            ['patch_whitening']
        """
        adapted = [layer for layer in walk_layers(self) if hasattr(layer, "adapt_channels_first")]
        for layer in adapted:
            layer.adapt_channels_first(self._inputs_of(layer, x, batch_size))
        return [layer.name for layer in adapted]

    def _inputs_of(self, layer: Layer, x: Any, batch_size: int) -> Iterator[Tensor]:
        """What `layer` receives when x runs through the model in inference mode, batch by batch,
        channels first on the CPU; each forward pass stops at the layer."""
        seen: list[Tensor] = []

        def capture(module: Any, arguments: tuple[Any, ...]) -> None:
            seen.append(arguments[0].detach().float().cpu())
            raise _Captured

        hook, training = layer.register_forward_pre_hook(capture), self.training
        self.eval()
        try:
            for start in range(0, len(x), batch_size):
                try:
                    with torch.no_grad():
                        self(x[start : start + batch_size])
                except _Captured:
                    yield seen.pop()
        finally:
            hook.remove()
            self.train(training)

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for `x` taken as one batch, as Keras's predict_on_batch."""
        first = x[0] if isinstance(x, (list, tuple)) and self.input_count > 1 else x
        return self.predict(x, batch_size=max(1, len(first)))

    def export(self, path: str | Path, format: str = "onnx", **options: Any) -> Any:
        """Write the model as ONNX, checked against ONNX Runtime first (Keras's model.export). A
        shortcut for hubel.export.export_onnx(self, path, **options), imported only when called."""
        if format != "onnx":
            raise ConfigError(f"model.export: hubel exports format='onnx'. Received: format={format!r}")
        from hubel.export.onnx import export_onnx  # the export layer sits above models/

        return export_onnx(self, path, **options)

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write a .hubel model file (architecture + safetensors weights); see hubel.load_model."""
        from hubel.models.io import save_model

        return save_model(self, path, metadata)

    # ----- config -----------------------------------------------------------------------

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as JSON, as Keras's to_json ({"class_name", "config"}; no weights):
        hubel.models.model_from_json rebuilds it. kwargs go to json.dumps (indent=2, ...)."""
        import json

        return json.dumps({"class_name": self.kind, "config": self.get_config()}, **kwargs)

    def get_config(self) -> dict[str, Any]:
        """Keras's functional config: every layer with the calls that feed it ("inbound_nodes",
        each input as [layer name, node index, tensor index]), then the model's inputs and outputs."""
        node_index = self._node_indices()

        def reference(tensor: SymbolicTensor) -> list[Any]:
            producer: Any = tensor.producer  # every graph tensor has one (an Input's is its InputLayer)
            return [producer.layer.name, node_index[id(producer)], tensor.index]

        entries = []
        for layer in self._graph_layers:
            nodes = [node for node in self._nodes if node.layer is layer]
            entries.append({
                "class_name": class_name(layer),
                "name": layer.name,
                "config": layer.get_config(),
                "inbound_nodes": [
                    {"args": [reference(t) for t in node.inputs], "as_list": node.as_list, "training": node.training}
                    for node in nodes
                ],
            })  # fmt: skip
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": entries,
            "input_layers": [reference(t) for t in self._inputs],
            "output_layers": [reference(t) for t in self._outputs],
            "single_input": self._single_input,
            "single_output": self._single_output,
        }

    def _node_indices(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        indices = {id(t.producer): 0 for t in self._inputs}
        for node in self._nodes:
            indices[id(node)] = counts.get(id(node.layer), 0)
            counts[id(node.layer)] = indices[id(node)] + 1
        return indices

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuild a functional model from get_config()'s output: layers first, then their calls
        in an order where every input exists (a shared layer may be called late)."""
        if not isinstance(config.get("layers"), list) or "input_layers" not in config:
            raise ConfigError("a functional model config needs `layers` and `input_layers` (from Model.get_config).")
        produced: dict[tuple[str, int], list[SymbolicTensor]] = {}
        pending: list[tuple[Layer, dict[str, Any], int]] = []
        for index, entry in enumerate(config["layers"]):
            if entry.get("class_name") == "InputLayer":
                settings = entry.get("config") or {}
                tensor = Input(settings.get("shape"), name=settings.get("name"), dtype=settings.get("dtype"))
                produced[(tensor.name, 0)] = [tensor]
                continue
            layer = layer_from_entry(entry, f"layer {index} ({entry.get('name')})")
            pending += [(layer, call, number) for number, call in enumerate(entry.get("inbound_nodes") or [])]
        while pending:
            waiting = []
            for layer, call, number in pending:
                keys = [(name, node) for name, node, _ in call["args"]]
                if not all(key in produced for key in keys):
                    waiting.append((layer, call, number))
                    continue
                arguments = [produced[(name, node)][tensor] for name, node, tensor in call["args"]]
                output = layer(arguments if call.get("as_list") else arguments[0], training=call.get("training"))
                produced[(layer.name, number)] = output if isinstance(output, list) else [output]
            if len(waiting) == len(pending):
                missing = waiting[0][1]["args"]
                raise ConfigError(
                    f"the functional config cannot be connected: layer {waiting[0][0].name!r} waits for {missing}, "
                    f"which no layer produces. The model file is damaged."
                )
            pending = waiting

        def tensors(references: list[Any], single: bool) -> Any:
            found = [produced[(name, node)][tensor] for name, node, tensor in references]
            return found[0] if single and len(found) == 1 else found

        return cls(
            tensors(config["input_layers"], config.get("single_input", True)),
            tensors(config["output_layers"], config.get("single_output", True)),
            name=config.get("name"),
            trainable=config.get("trainable", True),
        )

    # ----- forward ----------------------------------------------------------------------

    def forward(self, x: Any, internal: bool = False) -> Any:  # (N, H, W, C) -> (N, ..., C)
        inputs = self._boundary_in(x) if not internal else (list(x) if isinstance(x, (list, tuple)) else [x])
        outputs = self._run(inputs)
        if internal:
            return outputs[0] if self._single_output else outputs
        converted = [_keras_output(tensor) for tensor in outputs]
        return converted[0] if self._single_output else converted

    def _run(self, inputs: list[Tensor]) -> list[Tensor]:
        """The graph on channels-first tensors: each step reads its inputs' slots, writes its outputs'."""
        values: list[Any] = [None] * self._slot_count
        values[: len(inputs)] = inputs
        for step in self._program:
            arguments = [values[slot] for slot in step.inputs]
            argument = arguments if step.as_list else arguments[0]
            if isinstance(step.layer, Model):
                result = step.layer(argument, internal=True, training=step.training)
            else:
                result = step.layer(argument, training=step.training)
            if len(step.outputs) == 1:
                values[step.outputs[0]] = result
            else:
                for slot, tensor in zip(step.outputs, result):
                    values[slot] = tensor
        return [values[slot] for slot in self._output_slots]

    def encode_inputs(self, x: Any) -> Any:
        """Strings for an input read by a TextVectorization become its token ids (an int64 array);
        other data passes unchanged. The trainer calls this once per fit, not once per batch."""
        if getattr(self, "_single_input", True):  # a Sequential has one input
            vectorizer = self._vectorizers[0]
            return vectorizer.vectorize(x) if vectorizer is not None and is_text(x) else x
        if isinstance(x, (list, tuple)) and len(x) == len(self._inputs):
            return [
                vectorizer.vectorize(part) if vectorizer is not None and is_text(part) else part
                for part, vectorizer in zip(x, self._vectorizers)
            ]
        return x

    def _boundary_in(self, x: Any) -> list[Tensor]:
        """Keras-layout data for each input -> channels-first tensors on the model's device."""
        x = self.encode_inputs(x)
        if self._single_input:
            return [self._to_internal(x, self._input_example_shape(0), self._keeps_integers[0])]
        if isinstance(x, dict):
            x = [x[tensor.name] for tensor in self._inputs]
        if not isinstance(x, (list, tuple)) or len(x) != len(self._inputs):
            raise ShapeError(
                f"{self.kind} {self.name!r} has {len(self._inputs)} inputs "
                f"({', '.join(t.name for t in self._inputs)}); pass a list of {len(self._inputs)} arrays."
            )
        return [
            self._to_internal(part, self._input_example_shape(index), integers)
            for index, (part, integers) in enumerate(zip(x, self._keeps_integers))
        ]

    def _input_example_shape(self, index: int) -> Shape:
        """What one example of input `index` is once at the boundary: token ids for a text input."""
        vectorizer = self._vectorizers[index]
        return vectorizer._require_built()[1] if vectorizer is not None else self._inputs[index].example_shape

    def _to_internal(self, x: Any, expected: Shape, keeps_integers: bool) -> Tensor:
        """Accept Keras-layout (or unambiguous torch-layout) data and return channels-first tensors."""
        if not isinstance(x, Tensor):
            x = tensor_view(np.asarray(x))
        if (not keeps_integers and not x.is_floating_point()) or x.dtype == torch.float64:
            x = x.float()
        parameter = next(self.parameters(), None)
        if parameter is not None and x.device != parameter.device:
            x = x.to(parameter.device)
        per_example = tuple(x.shape[1:])
        if per_example == expected:
            return canonical_channels_last(keras_to_internal(x))
        if len(expected) == 3 and expected[-1] == 1 and per_example == expected[:-1]:
            return canonical_channels_last(keras_to_internal(x.unsqueeze(-1)))  # (N, H, W) grayscale
        if len(expected) > 1 and per_example == (expected[-1], *expected[:-1]):
            return x  # already channels first
        raise ShapeError(
            f"{self.kind} {self.name!r} takes examples of shape {expected} (channels last); received a batch of "
            f"shape {tuple(x.shape)}. Resize or reshape the data, or build a model for this shape."
        )

    def _require_input_shape(self) -> Any:
        return self._input_shape

    def extra_repr(self) -> str:
        return f"name={self.name!r}, input_shape={self._input_shape}"


register_layer(Model)
LAYERS.register("Functional")(Model)  # the name Keras's model files use


def walk_layers(model: Any) -> list[Layer]:
    """Every layer of a model, nested models opened (depth first, in running order), without
    InputLayers: what Grad-CAM, filters and feature maps search."""
    found: list[Layer] = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, Model):
            found += walk_layers(layer)
        elif not isinstance(layer, InputLayer):
            found.append(layer)
    return found


def class_name(layer: Layer) -> str:
    """The class name a summary and a model file give a layer: 'Functional' for a model, as Keras."""
    return getattr(layer, "kind", None) or type(layer).__name__


_KERAS_TENSOR_NAMES = ("input", "output")  # Keras's model.input and .output, and fine names for layers


def check_layer_name(model: Model, name: str) -> None:
    """A layer may not take the name of a model attribute (torch keeps a model's layers as its
    attributes), except "input" and "output", which Keras allows (see register_module)."""
    if name not in _KERAS_TENSOR_NAMES and (hasattr(type(model), name) or name in model.__dict__):
        raise ConfigError(
            f"{model.kind} {model.name!r}: the layer name {name!r} is also an attribute of {model.kind}. "
            f"Pass another `name=`."
        )


def register_module(model: Model, layer: Layer) -> None:
    """Add `layer` to the model's modules under its name. A layer named "input" or "output" (as
    Keras allows) is stored beside the properties of those names, which torch's add_module refuses;
    the model reaches its layers through its modules, never as attributes."""
    if layer.name in _KERAS_TENSOR_NAMES:
        model._modules[layer.name] = layer
    else:
        model.add_module(layer.name, layer)


def _is_input(tensor: SymbolicTensor) -> bool:
    return tensor.producer is not None and isinstance(tensor.producer.layer, InputLayer)


def _tensor_list(value: Any, argument: str, name: str) -> list[SymbolicTensor]:
    items = [value] if isinstance(value, SymbolicTensor) else list(value) if isinstance(value, (list, tuple)) else None
    if not items or not all(isinstance(item, SymbolicTensor) for item in items):
        raise ConfigError(
            f"Model {name!r}: expected `{argument}` to be a symbolic tensor (from hubel.layers.Input or a layer "
            f"call) or a list of them. Received: {argument}={value!r}"
        )
    return items


def _nodes_between(inputs: list[SymbolicTensor], outputs: list[SymbolicTensor], name: str) -> list[Node]:
    """The calls that lead from `inputs` to `outputs`, each after the calls it depends on."""
    known = {id(tensor) for tensor in inputs}
    order: list[Node] = []
    done: set[int] = set()
    stack: list[tuple[SymbolicTensor, bool]] = [(tensor, False) for tensor in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in known:
            continue
        node = tensor.producer
        if node is None or isinstance(node.layer, InputLayer):
            raise ConfigError(
                f"Model {name!r}: the outputs depend on the input {tensor.name!r}, which is not in `inputs`. "
                f"Pass every Input the outputs are computed from."
            )
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((tensor, True))
        stack += [(parent, False) for parent in reversed(node.inputs) if id(parent) not in known]
    return order


def _takes_integers(tensor: SymbolicTensor, nodes: list[Node]) -> bool:
    """Whether an input keeps integer token ids (dtype int, or read by an Embedding)."""
    if tensor.dtype in ("int32", "int64"):
        return True
    for node in nodes:
        if any(parent is tensor for parent in node.inputs):
            layer = node.layer
            if layer.accepts_integers or (isinstance(layer, Model) and any(layer._keeps_integers)):
                return True
    return False


def _text_vectorizer(tensor: SymbolicTensor, nodes: list[Node]) -> Layer | None:
    """The TextVectorization that reads this input directly, if one does: the input then takes strings."""
    for node in nodes:
        if getattr(node.layer, "accepts_strings", False) and any(parent is tensor for parent in node.inputs):
            return node.layer
    return None


def top_classes(scores: np.ndarray, class_names: Sequence[str], top: int) -> list[dict[str, Any]]:
    """The `top` classes of one prediction as [{"class", "probability"}], best first; one sigmoid
    unit is two classes (1 − p, p). Names fall back to the class index.

    Example:
        >>> top_classes(np.array([0.8]), ["cat", "dog"], 1)
        [{'class': 'dog', 'probability': 0.8}]
    """
    if scores.shape[0] == 1:
        probability = float(np.clip(scores[0], 0.0, 1.0))
        scores = np.array([1.0 - probability, probability])
    order = np.argsort(-scores, kind="stable")[:top]
    return [
        {"class": class_names[i] if i < len(class_names) else str(int(i)), "probability": float(scores[i])}
        for i in order
    ]


def is_text(x: Any) -> bool:
    """Whether x is a string or a batch of strings (a list, or a NumPy array of str or object)."""
    if isinstance(x, str):
        return True
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (x.dtype == object and x.size > 0 and isinstance(x.flat[0], (str, bytes)))
    return isinstance(x, (list, tuple)) and len(x) > 0 and isinstance(x[0], (str, bytes))


def _keras_output(x: Tensor) -> Tensor:
    """Channels first -> Keras layout, keeping the logits a softmax or sigmoid attached."""
    output = internal_to_keras(x)
    logits = getattr(x, "_hubel_logits", None)
    if logits is not None and output is not x:
        output._hubel_logits = internal_to_keras(logits)  # type: ignore[attr-defined]
    return output
