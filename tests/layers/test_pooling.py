import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import check_layer
from hubel import layers as L
from hubel.errors import ShapeError
from hubel.layers.base import internal_to_keras, keras_to_internal


def numpy_pool_tf(x, pool, stride, padding, mode):
    """Naive TF pooling over (H, W, C): 'same' windows see only real pixels (max ignores padding,
    average divides by the number of real pixels)."""
    (height, width, _), (pool_h, pool_w), (stride_h, stride_w) = x.shape, pool, stride
    if padding == "same":
        out_h, out_w = math.ceil(height / stride_h), math.ceil(width / stride_w)
        top = max((out_h - 1) * stride_h + pool_h - height, 0) // 2
        left = max((out_w - 1) * stride_w + pool_w - width, 0) // 2
    else:
        out_h, out_w = (height - pool_h) // stride_h + 1, (width - pool_w) // stride_w + 1
        top = left = 0
    y = np.zeros((out_h, out_w, x.shape[2]))
    for i in range(out_h):
        for j in range(out_w):
            r0, c0 = i * stride_h - top, j * stride_w - left
            window = x[max(r0, 0) : min(r0 + pool_h, height), max(c0, 0) : min(c0 + pool_w, width)]
            y[i, j] = window.max(axis=(0, 1)) if mode == "max" else window.mean(axis=(0, 1))
    return y


def run(layer, x_nhwc):
    with torch.no_grad():
        return internal_to_keras(layer(keras_to_internal(torch.as_tensor(x_nhwc)))).numpy()


@pytest.mark.parametrize("layer_class", [L.MaxPooling2D, L.AveragePooling2D])
@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize(
    ("pool", "stride", "padding"), [(2, 2, "same"), (3, 2, "same"), (3, 2, "valid"), (2, 1, "same")]
)
def test_pooling2d_matches_naive_tf_pooling(layer_class, size, pool, stride, padding):
    layer = layer_class(pool, strides=stride, padding=padding)
    x = np.random.default_rng(1).normal(size=(2, size, size + 1, 3)).astype(np.float32) - 3  # negatives: pad != 0
    mode = "max" if layer_class is L.MaxPooling2D else "avg"
    expected = np.stack([numpy_pool_tf(image, (pool, pool), (stride, stride), padding, mode) for image in x])
    check_layer(layer, x.shape[1:], expected.shape[1:], 0)
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("size", "pads"), [(7, (1, 1)), (8, (0, 1))])
def test_max_pooling_same_stride2_matches_torch_with_explicit_tf_padding(size, pads):
    layer = L.MaxPooling2D(3, strides=2, padding="same")
    layer.build((size, size, 2))
    x = torch.randn(2, 2, size, size) - 5  # all negative: zero padding would show
    before, after = pads  # TF: total (ceil(n/2) - 1)·2 + 3 − n, the odd one after
    expected = F.max_pool2d(F.pad(x, (before, after, before, after), value=-math.inf), 3, 2)
    torch.testing.assert_close(layer(x), expected)


def test_pooling_defaults_stride_to_pool_size_like_keras():
    check_layer(L.MaxPooling2D(), (26, 26, 64), (13, 13, 64), 0)
    check_layer(L.MaxPooling2D(2, 2), (11, 11, 64), (5, 5, 64), 0)
    check_layer(L.AveragePooling2D((3, 2)), (9, 9, 1), (3, 4, 1), 0)


@pytest.mark.parametrize("layer_class", [L.MaxPooling1D, L.AveragePooling1D])
def test_pooling1d_matches_naive_pooling_of_a_one_row_image(layer_class):
    layer = layer_class(3, strides=2, padding="same")
    check_layer(layer, (8, 4), (4, 4), 0)
    x = np.random.default_rng(2).normal(size=(2, 8, 4)).astype(np.float32)
    mode = "max" if layer_class is L.MaxPooling1D else "avg"
    expected = np.stack([numpy_pool_tf(steps[None], (1, 3), (1, 2), "same", mode)[0] for steps in x])
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("layer", "input_shape", "output_shape", "reduce"),
    [
        (L.GlobalMaxPooling2D(), (4, 5, 6), (6,), "max"),
        (L.GlobalAveragePooling2D(), (4, 5, 6), (6,), "mean"),
        (L.GlobalAveragePooling2D(keepdims=True), (4, 5, 6), (1, 1, 6), "mean"),
        (L.GlobalMaxPooling1D(), (9, 3), (3,), "max"),
        (L.GlobalAveragePooling1D(), (9, 3), (3,), "mean"),
    ],
)
def test_global_pooling(layer, input_shape, output_shape, reduce):
    check_layer(layer, input_shape, output_shape, 0)
    x = np.random.default_rng(3).normal(size=(2, *input_shape)).astype(np.float32)
    axes = tuple(range(1, len(input_shape)))
    expected = getattr(x, reduce)(axis=axes, keepdims=len(output_shape) > 1)
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-5)


def test_pool_larger_than_input_is_a_shape_error_with_the_formula():
    with pytest.raises(ShapeError, match=r"output width = \(W − F \+ 2P\)/S \+ 1 = \(1 − 2 \+ 2×0\)/2 \+ 1 = 0"):
        L.MaxPooling2D(2).build((4, 1, 8))
