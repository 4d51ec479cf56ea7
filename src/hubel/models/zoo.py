"""Named architectures from the Keras tutorials, each with its default input shape. Every image
model starts with Rescaling(1/255), so it takes raw 0-255 pixels (preprocessing travels with
the model) and accepts num_classes and input_shape. Text models take sequences of token ids
(Keras's imdb.load_data + pad_sequences); `hubel train` puts a TextVectorization in front.

    model = hubel.models.zoo.create_model("fashion_cnn")            # 243,786 params, as in Keras
    model = hubel.models.zoo.create_model("cifar_convnet", num_classes=2, input_shape=(64, 64, 3))
    model = hubel.models.zoo.create_model("imdb_conv1d", num_classes=2)  # 1,315,937 params
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hubel import layers as L
from hubel.layers import core
from hubel.layers.args import positive_int, shape_tuple
from hubel.layers.base import Layer, Shape
from hubel.models.sequential import Sequential
from hubel.registry import Registry

__all__ = ["ZOO", "Recipe", "TextInput", "ZooEntry", "create_model", "list_models"]


@dataclass(frozen=True)
class Recipe:
    """How `hubel train` trains a zoo model when the command line does not say: the tutorials'
    own settings for their networks (Adam at Keras's defaults, batch 32, a constant rate), and
    what measured best for the residual networks (benchmarks/README.md)."""

    optimizer: str = "adam"
    optimizer_settings: dict[str, Any] = field(default_factory=dict)
    learning_rate: float | None = None  # None: the optimizer's Keras default; the peak of a one-cycle schedule
    batch_size: int = 32
    # a --budget run without --model whose plan buys this network fewer than 3 epochs at batch_size
    # trains it at this batch instead, at the same rate: more steps for the same time, if the plan
    # buys it short_run_from_epochs or more (else, or None: the data's next long-run network, or its
    # default one)
    short_run_batch_size: int | None = None
    short_run_from_epochs: float = 0.0
    one_cycle: bool = False  # also with --epochs (a --budget run always uses one)
    one_cycle_settings: dict[str, float] = field(default_factory=dict)  # OneCycle's pct_start, div_factor, ...
    label_smoothing: float = 0.0  # of the cross-entropy's targets
    augment_from_epochs: int | None = None  # --augment auto's flips and shifts from this many epochs (None: 10)
    lookahead: bool = False  # fit with a Lookahead callback (hubel.train.Lookahead: a slow copy of the weights)
    # weight pattern -> the epochs those weights train before a FreezeWeights callback holds them
    freeze_after_epochs: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TextInput:
    """What a text model reads: ids below max_tokens (its Embedding's input_dim), and the tokens
    its TextVectorization makes (ngrams=2: words, then pairs of words)."""

    max_tokens: int
    ngrams: int | None = None


@dataclass(frozen=True)
class ZooEntry:
    name: str
    input_shape: Shape
    description: str
    layers: Callable[[int, Shape], list[Layer]]  # (num_classes, input_shape) -> layers after preprocessing
    recipe: Recipe = Recipe()
    text: TextInput | None = None  # set for text models: input_shape is (sequence length,)


ZOO: Registry[ZooEntry] = Registry("zoo model", "hubel.models.zoo.list_models() or `hubel zoo`")


def register(
    name: str, input_shape: Shape, description: str, recipe: Recipe | None = None, text: TextInput | None = None
) -> Callable[[Callable[[int, Shape], list[Layer]]], Any]:
    def add(layers: Callable[[int, Shape], list[Layer]]) -> Callable[[int, Shape], list[Layer]]:
        ZOO.register(name)(ZooEntry(name, input_shape, description, layers, recipe or Recipe(), text))
        return layers

    return add


def list_models() -> list[str]:
    """Every name create_model accepts."""
    return ZOO.names()


def create_model(name: str, num_classes: int = 10, input_shape: Any = None) -> Sequential:
    """A fresh (untrained) zoo model that takes raw pixels of input_shape (default: the entry's),
    or, for a text model, sequences of token ids of that length."""
    entry = ZOO.get(name)
    shape = entry.input_shape if input_shape is None else shape_tuple(name, "input_shape", input_shape)
    classes = positive_int(name, "num_classes", num_classes)
    if entry.text is not None:
        return Sequential([core.Input(shape, dtype="int64"), *entry.layers(classes, shape)], name=name)
    return Sequential([core.Input(shape), core.Rescaling(1 / 255), *entry.layers(classes, shape)], name=name)


def _head(num_classes: int) -> Layer:
    """One sigmoid unit for two classes (binary_crossentropy), else a softmax."""
    return L.Dense(1, activation="sigmoid") if num_classes == 2 else L.Dense(num_classes, activation="softmax")


@register("mlp", (28, 28, 1), "TensorFlow's beginner tutorial: Flatten, Dense(128), Dropout(0.2), Dense")
def _mlp(num_classes: int, shape: Shape) -> list[Layer]:
    return [L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.2), _head(num_classes)]


@register("mnist_one_conv", (28, 28, 1), "one Conv2D(32, 3x3) + max pooling + Dense(100)")
def _one_conv(num_classes: int, shape: Shape) -> list[Layer]:
    return [
        L.Conv2D(32, 3, activation="relu", kernel_initializer="he_uniform"),
        L.MaxPooling2D(),
        L.Flatten(),
        L.Dense(100, activation="relu", kernel_initializer="he_uniform"),
        _head(num_classes),
    ]


@register("fashion_cnn", (28, 28, 1), "the Fashion-MNIST tutorial: two Conv2D(64) + pooling, Dense(128)")
def _fashion(num_classes: int, shape: Shape) -> list[Layer]:
    return [
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(2, 2),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(2, 2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        _head(num_classes),
    ]


@register("mnist_pyramid", (28, 28, 1), "Conv2D 32 -> 64 -> 64 with pooling, Dense(64): the TensorFlow CNN tutorial")
def _pyramid(num_classes: int, shape: Shape) -> list[Layer]:
    return [
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        _head(num_classes),
    ]


@register("lenet", (28, 28, 1), "LeNet-5: tanh convolutions with average pooling, Dense 120 and 84")
def _lenet(num_classes: int, shape: Shape) -> list[Layer]:
    return [
        L.Conv2D(6, 5, padding="same", activation="tanh"),
        L.AveragePooling2D(),
        L.Conv2D(16, 5, activation="tanh"),
        L.AveragePooling2D(),
        L.Flatten(),
        L.Dense(120, activation="tanh"),
        L.Dense(84, activation="tanh"),
        _head(num_classes),
    ]


def _cifar_body() -> list[Layer]:
    return [
        L.Conv2D(32, 3, activation="relu"),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
    ]


@register("cifar_convnet", (32, 32, 3), "the CIFAR-10 tutorial convnet: five Conv2D, Flatten, Dense(1024)")
def _cifar(num_classes: int, shape: Shape) -> list[Layer]:
    return [*_cifar_body(), L.Flatten(), L.Dense(1024, activation="relu"), _head(num_classes)]


@register("cifar_convnet_gmp", (32, 32, 3), "the CIFAR-10 convnet with GlobalMaxPooling2D in place of Flatten")
def _cifar_gmp(num_classes: int, shape: Shape) -> list[Layer]:
    return [*_cifar_body(), L.GlobalMaxPooling2D(), L.Dense(1024, activation="relu"), _head(num_classes)]


@register("snacks_convnet", (224, 224, 3), "eight Conv2D in four blocks (32-256 filters), global average pooling")
def _snacks(num_classes: int, shape: Shape) -> list[Layer]:
    layers: list[Layer] = []
    for filters in (32, 64, 128, 256):
        layers += [
            L.Conv2D(filters, 3, padding="same", activation="relu"),
            L.Conv2D(filters, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
        ]
    return [*layers, L.GlobalAveragePooling2D(), L.Dropout(0.5), _head(num_classes)]


# The residual networks: a VGG-like stack of three stages, each a convolution, max pooling,
# batch norm and ReLU, then a residual convolution, as in the fast CIFAR-10 trainers (Myrtle's
# ResNet-9, hlb-CIFAR10, airbench). Pooling before batch norm normalises a quarter of the
# values; global max pooling makes the head independent of the input size.
# weight_decay is Keras's, decoupled (w -= lr·wd·w each step): 5e-3 gives the decay that 5e-4
# added to the gradient gave through momentum 0.9 (÷ (1 − 0.9)), the value the recipe was tuned with.
_RESNET_RECIPE = Recipe(
    optimizer="sgd",
    optimizer_settings={"momentum": 0.9, "nesterov": True, "weight_decay": 5e-3},
    learning_rate=0.1,
    batch_size=128,
    one_cycle=True,
)


def _conv_bn(filters: int) -> list[Layer]:
    return [
        L.Conv2D(filters, 3, padding="same", use_bias=False),
        L.BatchNormalization(momentum=0.9),
        L.ReLU(),
    ]


def _fast_resnet(num_classes: int, shape: Shape, stem: int, widths: tuple[int, ...]) -> list[Layer]:
    layers = _conv_bn(stem)
    for filters in widths:
        layers += [
            L.Conv2D(filters, 3, padding="same", use_bias=False),
            L.MaxPooling2D(),
            L.BatchNormalization(momentum=0.9),
            L.ReLU(),
            L.Residual(_conv_bn(filters)),
        ]
    return [*layers, L.GlobalMaxPooling2D(), _head(num_classes)]


for _name, _shape, _stem, _widths, _description in (
    ("fast_resnet", (32, 32, 3), 24, (32, 64, 128),
     "residual, batch norm, 24-32-64-128 filters, built as the fast CIFAR-10 trainers build theirs"),
    ("fast_resnet_small", (28, 28, 1), 16, (24, 48, 96),
     "fast_resnet at 16-24-48-96 filters, 1.7x its steps a second: the default for short runs"),
    ("fast_resnet_wide", (32, 32, 3), 32, (64, 256, 256),
     "fast_resnet with 64-256-256 filters (airbench's widths), for runs of an hour or more"),
):  # fmt: skip
    register(_name, _shape, _description, _RESNET_RECIPE)(partial(_fast_resnet, stem=_stem, widths=_widths))


# airbench's network and recipe (the fastest CIFAR-10 trainer to 94%): a PatchWhitening layer
# that hubel train fits to the training images before the first step, then three blocks of two
# convolutions, max pooling after the first of each, batch norm (centring only, as airbench's
# fixed scale) and GELU, no residuals; the convolutions start as the identity where they can
# ("dirac"); the head is a Dense without bias whose logits are scaled by 1/9. airbench's
# hyperparameters in Keras's units: its learning rate, 11.5 per 1,024 examples of a summed loss
# with momentum 0.85, is 1.5 for a mean loss; its weight decay, 0.0153 per 1,024 examples added
# to the gradient (through momentum), is a decoupled 8.87e-3; its schedule rises linearly from
# 0.2x to the peak over 23% of the steps and falls to 0.07x (here the same points, cosine); a
# lookahead copy of the weights with airbench's ramp; label smoothing 0.2; batch norm's offsets
# at 64x the rate; the whitening layer's bias trains for 3 epochs, then holds. Whitened
# patches make the first epoch worth several; at 256 filters it learns CIFAR-10 by heart sooner
# than the residual networks, so --augment auto adds flips and shifts from 6 epochs. At 64-192-192
# the recipe took a ten-minute run from 91.3% (the residual networks' SGD) to 92.2%, to 92.4%
# with the offsets' 64x rate, and to 92.8-92.9% with the bias held and whole-pixel shifts
# (benchmarks/README.md).
_AIRBENCH_RECIPE = Recipe(
    optimizer="sgd",
    optimizer_settings={
        "momentum": 0.85,
        "nesterov": True,
        "weight_decay": 8.87e-3,
        "learning_rate_multipliers": {"beta": 64.0},  # batch norm offsets: 64× the step, as airbench
    },
    learning_rate=1.5,
    batch_size=1024,
    one_cycle=True,
    one_cycle_settings={"pct_start": 0.23, "div_factor": 5.0, "final_div_factor": 2.857},
    label_smoothing=0.2,
    augment_from_epochs=6,
    lookahead=True,
    freeze_after_epochs={"patch_whitening*.bias": 3},
)


def _airbench(num_classes: int, shape: Shape, widths: tuple[int, ...], epsilon: float = 1e-12) -> list[Layer]:
    layers: list[Layer] = [L.PatchWhitening(2), L.Activation("gelu")]
    for filters in widths:
        for pooled in (True, False):
            layers += [
                L.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="dirac"),
                *([L.MaxPooling2D()] if pooled else []),
                L.BatchNormalization(momentum=0.4, epsilon=epsilon, scale=False),
                L.Activation("gelu"),
            ]
    units, activation = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    head = [L.Dense(units, use_bias=False), L.Rescaling(1 / 9), L.Activation(activation)]
    return [*layers, L.GlobalMaxPooling2D(), *head]


# At 28x28 a minute of two cores buys 32-64-128 filters 4-5 epochs at batch 512 (the rate scaled
# with the batch): 93.1-93.6% on Fashion-MNIST and 99.5-99.6% on MNIST, against 92.3-92.8% and
# 99.4-99.5% for fast_resnet_small. Batch norm's epsilon is Keras's 1e-3: at 1e-12 one channel of
# MNIST's first block grew to 1e5 and the first epochs validated at chance (benchmarks/README.md).
# Where a minute buys it fewer than 3 epochs (two float32 cores without AVX-512: 1-2), batch 256
# at the same rate: MNIST 99.51-99.58% and Fashion-MNIST 91.95-92.28%, against 99.18-99.45% and
# 90.23-90.98% at batch 512 and 99.26-99.39% and 90.59-90.97% for fast_resnet_small.
_AIRBENCH_TINY_RECIPE = replace(_AIRBENCH_RECIPE, batch_size=512, learning_rate=0.75, short_run_batch_size=256)

# Where a budget buys 64-192-192 filters fewer than 3 epochs, a --budget run on CIFAR-10 takes
# airbench_tiny instead (hubel.runs): on two float32 cores without AVX-512 ten minutes buy it 2
# epochs, 87.6-88.1% at batch 512, where airbench_tiny's 7.5 epochs reached 89.5% (benchmarks/README.md).
for _name, _shape, _widths, _epsilon, _recipe, _description in (
    ("airbench", (32, 32, 3), (64, 256, 256), 1e-12, _AIRBENCH_RECIPE,
     "a whitening layer fitted to the data, then 64-256-256 filters in pairs: airbench"),
    ("airbench_small", (32, 32, 3), (64, 192, 192), 1e-12, _AIRBENCH_RECIPE,
     "airbench at 64-192-192 filters, 1.4x its epochs: CIFAR-10's default for budgets"),
    ("airbench_tiny", (28, 28, 1), (32, 64, 128), 1e-3, _AIRBENCH_TINY_RECIPE,
     "airbench at 32-64-128 filters, batch 512: budgets on MNIST and Fashion-MNIST, short ones on CIFAR-10"),
):  # fmt: skip
    register(_name, _shape, _description, _recipe)(partial(_airbench, widths=_widths, epsilon=_epsilon))


# ----- text ---------------------------------------------------------------------------------------


@register(
    "imdb_conv1d",
    (500,),
    "the IMDB tutorial's 1D convnet: Embedding(10000, 128), two Conv1D(32, 7), global max pooling",
    Recipe(optimizer="rmsprop", learning_rate=1e-4, batch_size=128),
    TextInput(max_tokens=10_000),
)
def _imdb_conv1d(num_classes: int, shape: Shape) -> list[Layer]:
    # Two classes: one linear unit scored with binary cross-entropy, exactly as the tutorial
    # (Keras clips it into a probability); more: a softmax.
    top = L.Dense(1) if num_classes == 2 else L.Dense(num_classes, activation="softmax")
    return [
        L.Embedding(10_000, 128),
        L.Conv1D(32, 7, activation="relu"),
        L.MaxPooling1D(5),
        L.Conv1D(32, 7, activation="relu"),
        L.GlobalMaxPooling1D(),
        top,
    ]


@register(
    "ngram_bag",
    (800,),
    "words and word pairs, embedded and averaged (fastText's recipe): the most accuracy per CPU-second on IMDB",
    Recipe(optimizer="adam", learning_rate=3e-3, batch_size=64),
    TextInput(max_tokens=50_000, ngrams=2),
)
def _ngram_bag(num_classes: int, shape: Shape) -> list[Layer]:
    return [L.Embedding(50_000, 32), L.GlobalAveragePooling1D(), _head(num_classes)]
