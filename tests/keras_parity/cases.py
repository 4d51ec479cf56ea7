"""Random valid Keras models from a seed, as plain data both sides can build.

This file is shared by the two halves of the differential tester: it is imported by hubel's
side and by the Keras worker (keras_side.py, in .venv-keras), so it uses nothing but the
standard library. A case is a JSON-able dict:

    {"seed": 7, "kind": "image" | "text" | "mlp",
     "input": {"shape": [12, 12, 3], "dtype": "float32"},
     "layers": [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}}, ...],
     "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
     "loss": {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}},
     "metrics": ["accuracy"], "targets": "sparse" | "onehot" | "binary" | "regression",
     "num_classes": 3, "examples": 24,
     "fit": {"batch_size": 8, "epochs": 1, "validation_split": 0.0, "class_weight": None}}

Every argument is drawn only where both libraries document it; shapes are tracked with
Keras's formulas so that every generated model builds in Keras. `shrink` yields smaller
variants of a case, simplest first, for reducing a failure to its smallest reproducer.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from typing import Any

INITIALIZERS = [
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "random_uniform",
    "random_normal",
    "zeros",
    "ones",
]
ACTIVATIONS = [
    None,
    "relu",
    "tanh",
    "sigmoid",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "swish",
    "gelu",
    "relu6",
    "hard_sigmoid",
    "linear",
    "leaky_relu",
    "mish",
    "exponential",
    "log_softmax",
]
OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop"]


def _window(size: int, kernel: int, stride: int, padding: str, dilation: int = 1) -> int:
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1
    return math.ceil(size / stride)  # same, causal


def _window_arguments(strides: int, padding: str, dilation: int) -> dict[str, Any]:
    """A convolution's window arguments, the ones at Keras's defaults left out."""
    arguments: dict[str, Any] = {}
    if strides > 1:
        arguments["strides"] = strides
    if padding != "valid":
        arguments["padding"] = padding
    if dilation > 1:
        arguments["dilation_rate"] = dilation
    return arguments


class _Builder:
    """Draws layers onto a running per-example shape."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.layers: list[dict[str, Any]] = []

    def add(self, class_name: str, **config: Any) -> None:
        self.layers.append({"class_name": class_name, "config": config})

    def maybe(self, probability: float) -> bool:
        return self.rng.random() < probability

    def initializer(self, config: dict[str, Any], key: str, probability: float = 0.3) -> None:
        if self.maybe(probability):
            # a kernel of ones saturates the outputs, and float noise then decides Adam's steps
            choices = [name for name in INITIALIZERS if name != "ones" or "kernel" not in key]
            config[key] = self.rng.choice(choices)

    def activation(self, config: dict[str, Any], probability: float = 0.6) -> None:
        if self.maybe(probability):
            config["activation"] = self.rng.choice(ACTIVATIONS)

    def elementwise(self, shape: list[int]) -> None:
        """A layer that keeps the shape: activation, BN, dropout, ReLU variants, rescaling."""
        rng = self.rng
        kind = rng.choice(
            ["Activation", "BatchNormalization", "BatchNormalization", "Dropout", "ReLU", "LeakyReLU", "Rescaling"]
        )
        config: dict[str, Any] = {}
        if kind == "Activation":
            config["activation"] = rng.choice([a for a in ACTIVATIONS if a])
        elif kind == "BatchNormalization":
            if self.maybe(0.4):
                config["momentum"] = rng.choice([0.0, 0.5, 0.9, 0.99])
            if self.maybe(0.3):
                config["epsilon"] = rng.choice([1e-5, 1e-3, 0.1])
            if self.maybe(0.2):
                config["center"] = False
            if self.maybe(0.2):
                config["scale"] = False
            for key in (
                "beta_initializer",
                "gamma_initializer",
                "moving_mean_initializer",
                "moving_variance_initializer",
            ):
                if self.maybe(0.1):
                    config[key] = rng.choice(["zeros", "ones", "random_uniform"])
        elif kind == "Dropout":
            config["rate"] = rng.choice([0.0, 0.0, 0.25, 0.5])
        elif kind == "ReLU":
            if self.maybe(0.4):
                config["max_value"] = rng.choice([0.5, 1.0, 6.0])
            if self.maybe(0.4):
                config["negative_slope"] = rng.choice([0.1, 0.3])
            if self.maybe(0.4):
                config["threshold"] = rng.choice([0.0, 0.1, 0.5])
        elif kind == "LeakyReLU":
            if self.maybe(0.6):
                config["negative_slope"] = rng.choice([0.01, 0.2, 0.5])
        elif kind == "Rescaling":
            config["scale"] = rng.choice([1 / 255, 0.5, 2.0])
            if self.maybe(0.5):
                config["offset"] = rng.choice([-1.0, 0.5])
        self.add(kind, **config)

    def conv2d(self, shape: list[int]) -> list[int]:
        rng = self.rng
        h, w, c = shape
        depthwise = self.maybe(0.25)
        kernel = rng.choice([1, 2, 3, 3, 5])
        kernel_size: Any = kernel if self.maybe(0.7) else [kernel, rng.choice([1, 2, 3])]
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        padding = rng.choice(["valid", "same"])
        strides, dilation = 1, 1
        if self.maybe(0.3):
            strides = rng.choice([2, 3])
        if self.maybe(0.2):
            dilation = 2
        if not depthwise and strides > 1 and dilation > 1:
            dilation = 1  # Keras's Conv2D refuses both; its DepthwiseConv2D takes both
        oh, ow = (_window(h, kh, strides, padding, dilation), _window(w, kw, strides, padding, dilation))
        if oh < 1 or ow < 1:
            padding, oh, ow = "same", math.ceil(h / strides), math.ceil(w / strides)
        config: dict[str, Any] = {"kernel_size": kernel_size, **_window_arguments(strides, padding, dilation)}
        self.activation(config)
        if self.maybe(0.15):
            config["use_bias"] = False
        self.initializer(config, "bias_initializer", 0.15)
        if depthwise:
            multiplier = rng.choice([1, 1, 2])
            if multiplier > 1:
                config["depth_multiplier"] = multiplier
            self.initializer(config, "depthwise_initializer")
            self.add("DepthwiseConv2D", **config)
            return [oh, ow, c * multiplier]
        filters = rng.choice([2, 3, 4, 8])
        groups = 1
        if self.maybe(0.1) and c % 2 == 0 and filters % 2 == 0:
            groups = 2
            config["groups"] = groups
        self.initializer(config, "kernel_initializer")
        self.add("Conv2D", filters=filters, **config)
        return [oh, ow, filters]

    def pool2d(self, shape: list[int], name: str) -> list[int]:
        rng = self.rng
        h, w, c = shape
        pool = rng.choice([2, 2, 3])
        strides = rng.choice([None, None, 1, 2])
        padding = rng.choice(["valid", "same"])
        step = strides or pool
        oh, ow = _window(h, pool, step, padding), _window(w, pool, step, padding)
        if oh < 1 or ow < 1:
            return shape
        config: dict[str, Any] = {"pool_size": pool}
        if strides:
            config["strides"] = strides
        if padding != "valid":
            config["padding"] = padding
        self.add(name, **config)
        return [oh, ow, c]

    def conv1d(self, shape: list[int]) -> list[int]:
        rng = self.rng
        steps, _ = shape
        kernel = rng.choice([1, 2, 3, 5, 7])
        padding = rng.choice(["valid", "same", "causal"])
        strides = rng.choice([1, 1, 2])
        dilation = 2 if strides == 1 and self.maybe(0.2) else 1
        out = _window(steps, kernel, strides, padding, dilation)
        if out < 1:
            padding, out = "same", math.ceil(steps / strides)
        filters = rng.choice([2, 4, 8])
        config: dict[str, Any] = {
            "filters": filters,
            "kernel_size": kernel,
            **_window_arguments(strides, padding, dilation),
        }
        self.activation(config)
        self.initializer(config, "kernel_initializer")
        self.add("Conv1D", **config)
        return [out, filters]

    def pool1d(self, shape: list[int], name: str) -> list[int]:
        steps, channels = shape
        pool = self.rng.choice([2, 3, 5])
        padding = self.rng.choice(["valid", "same"])
        out = _window(steps, pool, pool, padding)
        if out < 1:
            return shape
        config: dict[str, Any] = {"pool_size": pool}
        if padding != "valid":
            config["padding"] = padding
        self.add(name, **config)
        return [out, channels]

    def dense(self, units: int, activation: str | None = "draw") -> None:
        """A Dense layer; activation "draw" picks one at random, None leaves it linear."""
        config: dict[str, Any] = {"units": units}
        if activation == "draw":
            self.activation(config, 0.5)
        elif activation:
            config["activation"] = activation
        self.initializer(config, "kernel_initializer")
        self.initializer(config, "bias_initializer", 0.15)
        if self.maybe(0.1):
            config["use_bias"] = False
        self.add("Dense", **config)


def _image_body(builder: _Builder) -> list[int]:
    rng = builder.rng
    shape = [rng.randint(5, 14), rng.randint(5, 14), rng.choice([1, 2, 3])]
    builder.input = {"shape": list(shape), "dtype": "float32"}  # type: ignore[attr-defined]
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        if roll < 0.5:
            shape = builder.conv2d(shape)
        elif roll < 0.7:
            shape = builder.pool2d(shape, rng.choice(["MaxPooling2D", "AveragePooling2D"]))
        elif roll < 0.8 and max(shape[:2]) < 12:
            pad = rng.choice([1, 2, [1, 2], [[0, 1], [2, 0]]])
            builder.add("ZeroPadding2D", padding=pad)
            (top, bottom), (left, right) = _pairs(pad)
            shape = [shape[0] + top + bottom, shape[1] + left + right, shape[2]]
        else:
            builder.elementwise(shape)
    roll = rng.random()
    if roll < 0.45:
        builder.add("Flatten")
        return [math.prod(shape)]
    if roll < 0.9:
        name = rng.choice(["GlobalAveragePooling2D", "GlobalMaxPooling2D"])
        keepdims = builder.maybe(0.2)
        builder.add(name, **({"keepdims": True} if keepdims else {}))
        if keepdims:
            builder.add("Flatten")
        return [shape[2]]
    builder.add("Reshape", target_shape=[shape[0] * shape[1], shape[2]])
    builder.add("GlobalMaxPooling1D")
    return [shape[2]]


def _pairs(pad: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(pad, int):
        return (pad, pad), (pad, pad)
    if isinstance(pad[0], int):
        return (pad[0], pad[0]), (pad[1], pad[1])
    return tuple(pad[0]), tuple(pad[1])  # type: ignore[return-value]


def _text_body(builder: _Builder) -> list[int]:
    rng = builder.rng
    steps, vocabulary = rng.randint(6, 30), rng.choice([20, 54, 100])
    builder.input = {"shape": [steps], "dtype": "int32", "vocabulary": vocabulary}  # type: ignore[attr-defined]
    config: dict[str, Any] = {"input_dim": vocabulary, "output_dim": rng.choice([2, 4, 8])}
    builder.initializer(config, "embeddings_initializer", 0.4)
    builder.add("Embedding", **config)
    shape = [steps, config["output_dim"]]
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.55:
            shape = builder.conv1d(shape)
        elif roll < 0.8:
            shape = builder.pool1d(shape, rng.choice(["MaxPooling1D", "AveragePooling1D"]))
        else:
            builder.elementwise(shape)
    roll = rng.random()
    if roll < 0.6:
        builder.add(rng.choice(["GlobalMaxPooling1D", "GlobalAveragePooling1D"]))
        return [shape[1]]
    builder.add("Flatten")
    return [math.prod(shape)]


def _mlp_body(builder: _Builder) -> list[int]:
    rng = builder.rng
    features = rng.randint(2, 24)
    builder.input = {"shape": [features], "dtype": "float32"}  # type: ignore[attr-defined]
    shape = [features]
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        if roll < 0.5:
            units = rng.choice([2, 4, 6, 8, 16])
            builder.dense(units)
            shape = [*shape[:-1], units]
        elif roll < 0.65 and len(shape) == 1 and shape[0] % 2 == 0:
            builder.add("Reshape", target_shape=[2, shape[0] // 2])
            shape = [2, shape[0] // 2]
        elif roll < 0.75 and len(shape) > 1:
            builder.add("Flatten")
            shape = [math.prod(shape)]
        else:
            builder.elementwise(shape)
    if len(shape) > 1:
        builder.add("Flatten")
        shape = [math.prod(shape)]
    return shape


def _optimizer(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(OPTIMIZERS)
    config: dict[str, Any] = {"learning_rate": rng.choice([0.001, 0.01, 0.05, 0.1])}
    if name == "SGD":
        if rng.random() < 0.6:
            config["momentum"] = rng.choice([0.5, 0.9])
            if rng.random() < 0.4:
                config["nesterov"] = True
    elif name in ("Adam", "AdamW"):
        if rng.random() < 0.3:
            config["beta_1"] = rng.choice([0.5, 0.8])
        if rng.random() < 0.3:
            config["beta_2"] = rng.choice([0.9, 0.99])
        if rng.random() < 0.3:
            config["epsilon"] = rng.choice([1e-8, 1e-4, 0.1])
        if rng.random() < 0.2:
            config["amsgrad"] = True
    else:
        if rng.random() < 0.3:
            config["rho"] = rng.choice([0.5, 0.95])
        if rng.random() < 0.3:
            config["momentum"] = rng.choice([0.5, 0.9])
        if rng.random() < 0.3:
            config["epsilon"] = rng.choice([1e-4, 0.1])
        if rng.random() < 0.2:
            config["centered"] = True
    if rng.random() < 0.2:
        config["weight_decay"] = rng.choice([0.01, 0.1])
    return {"class_name": name, "config": config}


def _head(builder: _Builder, case: dict[str, Any]) -> None:
    """The last Dense layer, the loss and the targets that go with it."""
    rng = builder.rng
    classes = rng.choice([2, 3, 5])
    roll = rng.random()
    if roll < 0.4:
        logits = builder.maybe(0.4)
        builder.dense(classes, None if logits else "softmax")
        loss = {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": logits}}
        targets, metrics = "sparse", rng.choice([["accuracy"], ["acc"], ["sparse_categorical_accuracy"], []])
    elif roll < 0.55:
        builder.dense(classes, "softmax")
        loss = {"class_name": "CategoricalCrossentropy", "config": {}}
        targets, metrics = "onehot", rng.choice([["accuracy"], ["categorical_accuracy"], []])
    elif roll < 0.85:
        style = rng.choice(["sigmoid", "logits", "linear"])  # linear: Keras clips the "probabilities"
        builder.dense(1, "sigmoid" if style == "sigmoid" else None)
        loss = {"class_name": "BinaryCrossentropy", "config": {"from_logits": style == "logits"}}
        targets, metrics, classes = "binary", rng.choice([["accuracy"], ["binary_accuracy"], []]), 2
    else:
        builder.dense(classes, None)
        loss = {"class_name": rng.choice(["MeanSquaredError", "MeanAbsoluteError"]), "config": {}}
        targets, metrics = "regression", []
    case.update(loss=loss, targets=targets, metrics=metrics, num_classes=classes)


def generate(seed: int) -> dict[str, Any]:
    """A random valid case for this seed (the same on every machine and in both venvs)."""
    rng = random.Random(seed)
    builder = _Builder(rng)
    kind = rng.choice(["image", "image", "text", "mlp"])
    {"image": _image_body, "text": _text_body, "mlp": _mlp_body}[kind](builder)
    case: dict[str, Any] = {"seed": seed, "kind": kind, "input": builder.input}  # type: ignore[attr-defined]
    _head(builder, case)
    batch = rng.choice([1, 4, 8, 16])
    fit: dict[str, Any] = {
        "batch_size": batch,
        "epochs": rng.choice([1, 1, 2]),
        "validation_split": 0.0,
        "class_weight": None,
    }
    if rng.random() < 0.3:
        fit["validation_split"] = rng.choice([0.2, 0.25])
    if case["targets"] in ("sparse", "binary") and rng.random() < 0.2:
        fit["class_weight"] = {str(k): rng.choice([0.5, 1.0, 2.0]) for k in range(case["num_classes"])}
    case.update(layers=builder.layers, optimizer=_optimizer(rng), fit=fit, examples=rng.choice([8, 16, 24]))
    # drawn last, so that every case drawn before label smoothing was stays the same
    if case["loss"]["class_name"] in ("CategoricalCrossentropy", "BinaryCrossentropy") and rng.random() < 0.33:
        case["loss"]["config"]["label_smoothing"] = rng.choice([0.1, 0.3])
    return case


KNOWN_DIFFERENCES = {
    "embedding_adaptive": (
        "Keras on TensorFlow gives an Embedding a sparse gradient and Adam/RMSprop square each occurrence of a "
        "token before summing them; hubel (like Keras on JAX or PyTorch) squares the summed gradient"
    ),
    "binary_logits_accuracy": (
        "accuracy of a from_logits binary model: Keras thresholds the logits at 0.5, hubel at 0 (probability 0.5)"
    ),
}


def known_differences(case: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The README's deliberate differences this case meets: name -> the checks they can fail."""
    known: dict[str, tuple[str, ...]] = {}
    layers = {layer["class_name"] for layer in case["layers"]}
    if "Embedding" in layers and case["optimizer"]["class_name"] in ("Adam", "AdamW", "RMSprop"):
        known["embedding_adaptive"] = ("history", "updates")
    loss = case["loss"]
    if loss["class_name"] == "BinaryCrossentropy" and loss["config"].get("from_logits") and case["metrics"]:
        known["binary_logits_accuracy"] = ("history",)
    return known


def has_randomness(case: dict[str, Any]) -> bool:
    """Training draws random numbers (dropout) that the two libraries cannot share."""
    return any(layer["class_name"] == "Dropout" and layer["config"].get("rate", 0) > 0 for layer in case["layers"])


def shrink(case: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Smaller variants of a case, the biggest simplifications first. Some may not build in
    Keras; the shrinker skips those."""
    layers = case["layers"]
    for index in range(len(layers) - 1):  # the head stays
        if layers[index]["class_name"] == "Embedding":
            continue
        smaller = copy.deepcopy(case)
        del smaller["layers"][index]
        yield smaller
    fit = case["fit"]
    for key, simple in (("epochs", 1), ("validation_split", 0.0), ("class_weight", None)):
        if fit.get(key) != simple:
            smaller = copy.deepcopy(case)
            smaller["fit"][key] = simple
            yield smaller
    if case["metrics"]:
        smaller = copy.deepcopy(case)
        smaller["metrics"] = []
        yield smaller
    for key in list(case["optimizer"]["config"]):
        if key != "learning_rate":
            smaller = copy.deepcopy(case)
            del smaller["optimizer"]["config"][key]
            yield smaller
    for index, layer in enumerate(layers):
        for key in list(layer["config"]):
            if key in ("units", "filters", "kernel_size", "input_dim", "output_dim", "target_shape", "rate"):
                continue
            smaller = copy.deepcopy(case)
            del smaller["layers"][index]["config"][key]
            yield smaller
    if case["examples"] > 4:
        smaller = copy.deepcopy(case)
        smaller["examples"] = max(4, case["examples"] // 2)
        smaller["fit"]["batch_size"] = min(fit["batch_size"], smaller["examples"])
        yield smaller
