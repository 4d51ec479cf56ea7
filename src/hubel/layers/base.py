"""The Layer base class: Keras's contract (names, build, shapes, config, param counts) on a
torch.nn.Module.

Shapes at the API are Keras's: per-example, channels last, batch excluded — (28, 28, 1).
Tensors inside a layer are channels first — (N, C, H, W), (N, C, L) or (N, F) — and the
Sequential model converts at its boundary (a free view for NHWC data, see DESIGN.md).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from hubel.errors import ConfigError, ShapeError, UnknownNameError
from hubel.layers import window
from hubel.layers.args import shape_tuple
from hubel.layers.initializers import initialize
from hubel.layers.symbolic import Node, SymbolicTensor, flatten_symbolic, is_symbolic
from hubel.layers.weights import Weight, name_scope, own_weights
from hubel.registry import Registry

__all__ = [
    "LAYERS",
    "Layer",
    "Shape",
    "as_shape",
    "canonical_channels_last",
    "clear_session",
    "internal_to_keras_shape",
    "keras_fans",
    "keras_to_internal",
    "layer_from_entry",
    "list_layers",
    "normalize_layer_entry",
    "register_layer",
    "snake_case",
    "tensor_view",
    "unique_name",
]

Shape = tuple[int, ...]

LAYERS: Registry[type[Layer]] = Registry("layer", "hubel.layers.list_layers()")

_name_counts: dict[str, int] = {}


def snake_case(name: str) -> str:
    """Keras's class-name-to-layer-name rule.

    Example:
        >>> snake_case("MaxPooling2D"), snake_case("ReLU"), snake_case("Conv2D")
        ('max_pooling2d', 're_lu', 'conv2d')
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """conv2d, conv2d_1, conv2d_2, ... per session, like Keras."""
    count = _name_counts.get(prefix, 0)
    _name_counts[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"


def clear_session() -> None:
    """Reset automatic layer names, so the next Conv2D is 'conv2d' again (keras.backend.clear_session)."""
    _name_counts.clear()


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make a layer buildable by name from a spec."""
    LAYERS.register(cls.__name__)(cls)
    return cls


def list_layers() -> list[str]:
    """Every layer class name a spec may use."""
    return LAYERS.names()


def normalize_layer_entry(entry: Any, where: str) -> dict[str, Any]:
    """The canonical {'class_name', 'config'} of a layer entry in a spec: a bare name ("Flatten"),
    {Name: {arguments}} or {class_name: ..., config: {...}}; `where` ("layer 3") starts the error.

    Example:
        >>> normalize_layer_entry({"Dense": {"units": 2}}, "layer 0")
        {'class_name': 'Dense', 'config': {'units': 2}}
    """
    if isinstance(entry, str):
        return {"class_name": entry, "config": {}}
    if isinstance(entry, dict) and "class_name" in entry:
        config = entry.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError(
                f"{where} ({entry['class_name']}): expected 'config' to be a mapping. Received: {config!r}"
            )
        return {"class_name": entry["class_name"], "config": config}
    if isinstance(entry, dict) and len(entry) == 1:
        ((class_name, config),) = entry.items()
        if config is None or isinstance(config, dict):
            return {"class_name": class_name, "config": config or {}}
    text = repr(entry)
    raise ConfigError(
        f"{where}: expected a layer name, {{LayerName: {{arguments}}}} or {{class_name: ..., config: {{...}}}}. "
        f"Received: {text if len(text) <= 80 else text[:77] + '...'}"
    )


def layer_from_entry(entry: Any, where: str) -> Layer:
    """A new layer from a spec entry in any form normalize_layer_entry accepts."""
    canonical = normalize_layer_entry(entry, where)
    try:
        return LAYERS.get(canonical["class_name"]).from_config(canonical["config"])
    except (ConfigError, UnknownNameError) as error:
        raise type(error)(f"{where}: {error}") from None


def keras_to_internal(x: Tensor) -> Tensor:
    """(N, ..., C) -> (N, C, ...): a view; NHWC bytes come out as channels_last NCHW. (Explicit,
    non-negative axes: ONNX export writes them as they are, and ONNX refuses negative ones.)"""
    rank = x.dim()
    return x.permute(0, rank - 1, *range(1, rank - 1)) if rank > 2 else x


def canonical_channels_last(x: Tensor) -> Tensor:
    """Give a channels_last (N, C, H, W) tensor the standard channels_last strides; a view, no
    copy. A size-1 axis may carry any stride, and one channel in NCHW strides reads as channels
    first to the convolutions, which then run the whole network channels first (max pooling's
    forward 7× slower). Other tensors, and graphs being traced for export, come back as they are."""
    if x.dim() != 4 or torch.jit.is_tracing() or not x.is_contiguous(memory_format=torch.channels_last):
        return x
    _, c, h, w = x.shape
    strides = (h * w * c, 1, w * c, c)
    return x if x.stride() == strides else x.as_strided(x.shape, strides)


def internal_to_keras(x: Tensor) -> Tensor:
    """(N, C, ...) -> (N, ..., C): a view."""
    rank = x.dim()
    return x.permute(0, *range(2, rank), 1) if rank > 2 else x


def tensor_view(array: np.ndarray) -> Tensor:
    """A tensor sharing the array's memory (no copy). Read-only arrays (memory-mapped caches,
    np.load results) are fine: hubel never writes into its inputs, so torch's warning is muted."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def internal_to_keras_shape(shape: tuple[int, ...]) -> Shape:
    """Per-example internal shape (C, H, W) -> Keras shape (H, W, C)."""
    return (*shape[1:], shape[0]) if len(shape) > 1 else tuple(shape)


def as_shape(input_shape: Any) -> Shape | list[Shape]:
    """One per-example shape as a tuple of ints, or a list of them for layers that take several
    inputs (merge layers): ((2, 3), (2, 3)) -> [(2, 3), (2, 3)].

    Example:
        >>> as_shape([26, 26, 64]), as_shape([(4,), (4,)])
        ((26, 26, 64), [(4,), (4,)])
    """
    items = list(input_shape)
    if items and all(isinstance(item, (tuple, list)) for item in items):
        return [tuple(int(size) for size in item) for item in items]
    return tuple(int(size) for size in items)


def keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's compute_fans for a weight stored in Keras's layout.

    Example:
        >>> keras_fans(()), keras_fans((100,)), keras_fans((54, 2)), keras_fans((3, 3, 8, 16))
        ((1, 1), (100, 100), (54, 2), (72, 144))
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    field = math.prod(shape[:-2])
    return shape[-2] * field, shape[-1] * field


def _with_batch(shape: Shape | list[Shape]) -> Any:
    return [(None, *item) for item in shape] if isinstance(shape, list) else (None, *shape)


class Layer(nn.Module):
    """Base of every hubel layer.

    Subclasses set their arguments in __init__ (passing the rest to super), answer
    compute_output_shape (raising ShapeError when the input does not fit), create their
    weights in create_weights, and implement forward on channels-first tensors.
    """

    #: True for layers that take integer token ids (Embedding): the model then keeps integers
    accepts_integers: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str | None = None,
        input_shape: Any = None,
        input_dim: int | None = None,
        trainable: bool = True,
        **unexpected: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if unexpected:
            raise ConfigError(self._unexpected_message(unexpected))
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w]*", name)):
            raise ConfigError(
                f"{owner}: expected `name` to be letters, digits and underscores, not starting with a digit. "
                f"Received: name={name!r}"
            )
        self.name: str = name or unique_name(snake_case(owner))
        if input_dim is not None:
            input_shape = (input_dim,)
        self.declared_input_shape: Shape | None = (
            None if input_shape is None else shape_tuple(owner, "input_shape", input_shape)
        )
        self._trainable = bool(trainable)
        self.built = False
        self.after: str | None = None  # the layer feeding this one, for error messages
        self._inbound_nodes: list[Node] = []  # its calls on symbolic tensors, first to last
        self._input_shape: Shape | None = None
        self._output_shape: Shape | None = None
        self._weights_path: str | None = None  # Keras's path of its weights, set when they are created

    # ----- Keras contract -------------------------------------------------------------

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        """Per-example output shape for a per-example input shape; ShapeError if it cannot fit."""
        return input_shape

    def create_weights(self, input_shape: Shape) -> None:
        """Create parameters for this input shape (called once by build)."""

    def build(self, input_shape: Shape) -> None:
        """Check the input fits, then create weights. Building twice with one shape is a no-op."""
        shape = as_shape(input_shape)
        if self.built:
            if shape != self._input_shape:
                raise ShapeError(
                    f"{self.describe()} was built for input shape {self._input_shape} and cannot take "
                    f"{shape}. Create a new layer for the new input."
                )
            return
        output = self.compute_output_shape(shape)  # type: ignore[arg-type]
        with name_scope(self.name) as path:  # inside a Sequential's build: "sequential/conv2d"
            self._weights_path = path
            self.create_weights(shape)  # type: ignore[arg-type]
        self._input_shape, self._output_shape = shape, as_shape(output)  # type: ignore[assignment]
        self.built = True

    def __call__(self, x: Any, *args: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """On tensors (channels first): the forward pass, building the layer on first use. On
        symbolic tensors (hubel.layers.Input and what layers return for them): build the layer
        for their shapes and return the symbolic output, recording the call for hubel.Model.
        training=False runs the layer in inference mode whatever the model's mode (Keras's
        `base(x, training=False)`: BatchNormalization keeps its moving statistics)."""
        if is_symbolic(x):
            return self._call_symbolic(x, training)
        if not self.built:
            self.build_for(x)
        if training is None or training == self.training:
            return super().__call__(x, *args, **kwargs)
        mode = self.training
        self.train(training)
        try:
            return super().__call__(x, *args, **kwargs)
        finally:
            self.train(mode)

    def build_for(self, x: Any) -> None:
        """Build for the shape of a channels-first tensor (or a list of them) on first use."""
        if isinstance(x, (list, tuple)):
            self.build([internal_to_keras_shape(tuple(t.shape[1:])) for t in x])
        else:
            self.build(internal_to_keras_shape(tuple(x.shape[1:])))

    def _call_symbolic(self, x: Any, training: bool | None) -> Any:
        as_list = isinstance(x, (list, tuple))
        tensors = list(flatten_symbolic(x))
        if len(tensors) != (len(x) if as_list else 1):
            raise ConfigError(
                f"{self.describe()}: called on a mix of symbolic tensors (from hubel.layers.Input) and other "
                f"values. Call a layer on Input tensors and on what layers return for them. Received: {x!r}"
            )
        self.after = ", ".join(dict.fromkeys(tensor.layer_name for tensor in tensors))
        shapes = [tensor.example_shape for tensor in tensors]
        self.build(shapes if as_list else shapes[0])
        node = Node(self, tensors, as_list, training)
        output = self._require_built()[1]
        several = isinstance(output, list)
        for index, shape in enumerate(output if several else [output]):  # type: ignore[arg-type]
            node.outputs.append(SymbolicTensor(shape, f"{self.name}_{index}" if several else self.name, node, index))
        self._inbound_nodes.append(node)
        return list(node.outputs) if several else node.outputs[0]

    @property
    def input(self) -> Any:
        """The symbolic tensor this layer was first called on (a list for merge layers), as
        Keras's `layer.input`. A layer in a Sequential with a known input shape has one."""
        return self._first_call("inputs", "input")

    @property
    def output(self) -> Any:
        """The symbolic tensor of this layer's first call, as Keras's `layer.output`: what
        `hubel.Model(model.inputs, [layer.output for layer in model.layers])` takes to return
        every layer's activations."""
        return self._first_call("outputs", "output")

    def _first_call(self, side: str, what: str) -> Any:
        if not self._inbound_nodes:
            raise ConfigError(
                f"{self.describe()} has never been called on a symbolic tensor, so it has no {what} yet. Give its "
                f"model an input shape (start a Sequential with hubel.layers.Input(shape=...)) or call it on one."
            )
        tensors = getattr(self._inbound_nodes[0], side)
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def input_shape(self) -> Any:
        """(None, *shape): the built input shape with the batch axis (a list for merge layers)."""
        return _with_batch(self._require_built()[0])

    @property
    def output_shape(self) -> Any:
        """(None, *shape): the built output shape with the batch axis, as Keras prints it."""
        return _with_batch(self._require_built()[1])

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze or unfreeze this layer and every layer inside it (a Residual's), as Keras does."""
        for layer in self.modules():
            if isinstance(layer, Layer):
                layer._trainable = bool(value)
                for parameter in layer.parameters(recurse=False):
                    parameter.requires_grad_(bool(value))

    @property
    def weights(self) -> list[Weight]:
        """Every weight, as Keras's `layer.weights`: this layer's (trainable first), then its
        sublayers'; Keras's names, layouts and shapes (see layers/weights.py)."""
        return own_weights(self) + [weight for layer in self._sublayers() for weight in layer.weights]

    @property
    def trainable_weights(self) -> list[Weight]:
        """The weights that train, as Keras's `layer.trainable_weights` (none when frozen)."""
        return [weight for weight in self.weights if weight.trainable]

    @property
    def non_trainable_weights(self) -> list[Weight]:
        """Frozen weights and state such as BN's moving statistics, as Keras's."""
        return [weight for weight in self.weights if not weight.trainable]

    def count_params(self) -> int:
        """All weights, as Keras counts them: parameters plus state such as BN moving statistics."""
        self._require_built()
        return sum(p.numel() for p in self.parameters()) + sum(b.numel() for b in self.buffers())

    def count_trainable_params(self) -> int:
        self._require_built()
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def macs(self) -> int:
        """Multiply-accumulates per example for the built shapes (0 for layers without any)."""
        return 0

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild an equal layer: `type(layer)(**config)`."""
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        unexpected = {key: value for key, value in config.items() if key not in cls.accepted_arguments()}
        if unexpected:
            raise ConfigError(cls._unexpected_message(unexpected))
        missing = [name for name in cls.required_arguments() if name not in config]
        if missing:
            raise ConfigError(
                f"{cls.__name__}: missing required argument {', '.join(f'`{name}`' for name in missing)}. "
                f"Received: {config!r}"
            )
        return cls(**config)

    @classmethod
    def accepted_arguments(cls) -> list[str]:
        """Every constructor argument, the subclass's first, then the base's (name, input_shape, ...)."""
        accepted: list[str] = []
        for klass in cls.__mro__:
            if klass is nn.Module:
                break
            names = inspect.signature(klass.__init__).parameters
            accepted += [p for p in names if p not in ("self", "unexpected", "kwargs", "args")]
        return list(dict.fromkeys(accepted))

    @classmethod
    def required_arguments(cls) -> list[str]:
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD][1:]

    def get_weights(self) -> list[np.ndarray]:
        """The weights as Keras's get_weights(): NumPy arrays in Keras's layout (a Conv2D kernel is
        (kh, kw, in, filters), a Dense kernel (in, units)), this layer's own in creation order
        (kernel, bias; BN's gamma, beta, moving mean, moving variance), then its sublayers'.

        Example:
            >>> from hubel.layers import Dense
            >>> layer = Dense(4); layer.build((3,))
            >>> [w.shape for w in layer.get_weights()]
            [(3, 4), (4,)]
        """
        own = [self.keras_weight(name, tensor) for name, tensor in self._own_weights()]
        return own + [weight for layer in self._sublayers() for weight in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Replace the weights with arrays in get_weights()'s layout and order (for example,
        from a Keras model's layer.get_weights())."""
        expected = self.get_weights()
        if len(weights) != len(expected):
            raise ConfigError(
                f"{self.describe()}.set_weights: expected {len(expected)} arrays "
                f"({', '.join(str(w.shape) for w in expected) or 'none'}). Received: {len(weights)}"
            )
        shapes = [np.shape(w) for w in weights]
        wrong = [(i, s, e.shape) for i, (s, e) in enumerate(zip(shapes, expected)) if tuple(s) != e.shape]
        if wrong:
            index, received, wanted = wrong[0]
            raise ShapeError(
                f"{self.describe()}.set_weights: weight {index} should have shape {wanted} (Keras's layout). "
                f"Received: {tuple(received)}"
            )
        self._assign_weights(list(weights))

    def _assign_weights(self, weights: list[Any]) -> list[Any]:
        own = self._own_weights()
        with torch.no_grad():
            for (name, tensor), array in zip(own, weights):
                value = self.internal_weight(name, torch.as_tensor(np.asarray(array)))
                tensor.copy_(value.to(tensor.dtype).reshape(tensor.shape))
        rest = weights[len(own) :]
        for layer in self._sublayers():
            rest = layer._assign_weights(rest)
        return rest

    def keras_weight(self, name: str, value: Tensor) -> np.ndarray:
        """One own weight in Keras's layout; layers that store a kernel in torch's layout override."""
        return value.detach().cpu().numpy().copy()

    def internal_weight(self, name: str, value: Tensor) -> Tensor:
        """The inverse of keras_weight: a Keras-layout weight in this layer's layout."""
        return value

    def _own_weights(self) -> list[tuple[str, Tensor]]:
        return [*self.named_parameters(recurse=False), *self.named_buffers(recurse=False)]

    def _sublayers(self) -> list[Layer]:
        return [module for module in self.children() if isinstance(module, Layer)]

    # ----- helpers for subclasses -----------------------------------------------------

    def add_weight(
        self, name: str, shape: tuple[int, ...], initializer: str, fan_in: int | None = None, fan_out: int | None = None
    ) -> nn.Parameter:
        """A trainable parameter, initialised the Keras way and registered under `name`. Kernels
        stored in torch's layout pass their Keras fans; otherwise the fans are Keras's for a
        weight of this shape: (n, n) for a vector such as a bias, (rows, columns) for a matrix
        such as an Embedding's."""
        tensor = torch.empty(shape)
        if fan_in is None or fan_out is None:
            keras_in, keras_out = keras_fans(shape)
            fan_in, fan_out = fan_in or keras_in, fan_out or keras_out
        initialize(initializer, tensor, fan_in, fan_out)
        parameter = nn.Parameter(tensor, requires_grad=self._trainable)
        self.register_parameter(name, parameter)
        return parameter

    def add_state(self, name: str, shape: tuple[int, ...], initializer: str) -> Tensor:
        """A non-trainable weight (a buffer saved with the model), such as a BN moving mean."""
        tensor = torch.empty(shape)
        initialize(initializer, tensor)
        self.register_buffer(name, tensor)
        return tensor

    def describe(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def expect_rank(self, input_shape: Shape, rank: int, layout: str) -> Shape:
        """Return input_shape if it has `rank` axes, else a ShapeError that shows the layout expected."""
        if len(input_shape) != rank:
            fix = "Check input_shape (batch axis excluded), or add a Reshape or Flatten layer before it."
            if len(input_shape) == rank - 1:
                fix = f"For one channel, add the channel axis: input_shape={(*input_shape, 1)}."
            raise self.shape_error(
                input_shape,
                f"expected a per-example input of rank {rank}, {layout}, but it has rank {len(input_shape)}",
                fix,
            )
        return input_shape

    def shape_error(self, input_shape: Shape, problem: str, fix: str) -> ShapeError:
        after = f" (after {self.after})" if self.after else ""
        return ShapeError(f"{self.describe()} cannot take input shape {tuple(input_shape)}{after}: {problem}. {fix}")

    def fit_windows(
        self,
        input_shape: Shape,
        sizes: tuple[int, ...],
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        padding: str,
        dilation: tuple[int, ...] | None = None,
        argument: str = "kernel_size",
    ) -> tuple[int, ...]:
        """Output sizes of a sliding window; a ShapeError with the formula filled in if < 1."""
        dilation = dilation or (1,) * len(sizes)
        outputs = tuple(
            window.output_size(size, k, s, padding, d) for size, k, s, d in zip(sizes, kernel, strides, dilation)
        )
        for axis, (size, k, s, d, out) in enumerate(zip(sizes, kernel, strides, dilation, outputs)):
            if out >= 1:
                continue
            axis_name = ("steps", "L") if len(sizes) == 1 else (("height", "H"), ("width", "W"))[axis]
            word, letter = axis_name
            span = window.effective_size(k, d)
            dilated = f" (F = ({k} − 1)×{d} + 1 with dilation_rate {d})" if d > 1 else ""
            largest = "x".join(str(n) for n in sizes)
            raise self.shape_error(
                input_shape,
                f"output {word} = ({letter} − F + 2P)/S + 1 = ({size} − {span} + 2×0)/{s} + 1 = "
                f"{math.floor((size - span) / s) + 1}, less than 1{dilated}",
                f"Use padding='same' or a {argument} of at most {largest}.",
            )
        return outputs

    def _require_built(self) -> tuple[Shape, Shape]:
        if not self.built or self._input_shape is None or self._output_shape is None:
            raise ShapeError(
                f"{self.describe()} is not built yet, so it has no shapes. Give the model an input shape "
                f"(input_shape=... on the first layer, or hubel.layers.Input) or call it on data."
            )
        return self._input_shape, self._output_shape

    @classmethod
    def _unexpected_message(cls, unexpected: dict[str, Any]) -> str:
        accepted = cls.accepted_arguments()
        parts = []
        for key in unexpected:
            close = difflib.get_close_matches(key, accepted, n=1)
            parts.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
        return (
            f"{cls.__name__}: unexpected argument {', '.join(parts)}. Accepted: {', '.join(accepted)}. "
            f"Received: {', '.join(f'{k}={v!r}' for k, v in unexpected.items())}"
        )

    def extra_repr(self) -> str:
        config = {k: v for k, v in self.get_config().items() if k not in ("name", "trainable")}
        return ", ".join([f"name={self.name!r}", *(f"{k}={v!r}" for k, v in config.items())])
