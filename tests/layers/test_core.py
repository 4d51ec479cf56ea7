import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import check_layer
from hubel import layers as L
from hubel.errors import ConfigError, ShapeError
from hubel.layers.base import internal_to_keras, keras_to_internal


def run(layer, x_keras):
    with torch.no_grad():
        return internal_to_keras(layer(keras_to_internal(torch.as_tensor(x_keras)))).numpy()


def test_dense_params_glorot_and_value():
    layer = L.Dense(128, activation="relu")
    check_layer(layer, (1600,), (128,), 1600 * 128 + 128)
    limit = math.sqrt(6 / (1600 + 128))
    assert layer.kernel.abs().max() <= limit and torch.count_nonzero(layer.bias) == 0
    x = np.random.default_rng(0).normal(size=(3, 1600)).astype(np.float32)
    expected = np.maximum(x @ layer.kernel.detach().numpy().T + layer.bias.detach().numpy(), 0)
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-4, atol=1e-5)


def test_dense_on_rank3_acts_on_the_last_axis():
    layer = L.Dense(4, use_bias=False)
    check_layer(layer, (6, 5, 3), (6, 5, 4), 12)
    x = np.random.default_rng(1).normal(size=(2, 6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), x @ layer.kernel.detach().numpy().T, rtol=1e-5, atol=1e-6)


def test_flatten_uses_keras_hwc_order():
    layer = L.Flatten()
    check_layer(layer, (5, 5, 64), (1600,), 0)
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # NHWC
    np.testing.assert_array_equal(run(layer, x), x.reshape(2, -1))


def test_reshape_with_and_without_minus_one():
    check_layer(L.Reshape((28, 28, 1)), (784,), (28, 28, 1), 0)
    check_layer(L.Reshape((-1, 4)), (6, 2), (3, 4), 0)
    x = np.arange(24, dtype=np.float32).reshape(2, 12)
    layer = L.Reshape((2, 3, 2))
    layer.build((12,))
    np.testing.assert_array_equal(run(layer, x), x.reshape(2, 2, 3, 2))
    with pytest.raises(ShapeError, match=r"12 values per example cannot be reshaped to \(5, 5\)"):
        L.Reshape((5, 5)).build((12,))
    with pytest.raises(ConfigError, match="at most one -1"):
        L.Reshape((-1, -1))


def test_dropout_is_identity_in_eval_and_scales_in_training():
    layer = L.Dropout(0.5)
    check_layer(layer, (1000,), (1000,), 0)
    x = torch.ones(4, 1000)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    y = layer(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0.4 < (y == 0).float().mean() < 0.6
    with pytest.raises(ConfigError, match=r"expected `rate` in \[0, 1\)"):
        L.Dropout(1.0)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "softplus", "linear"])
def test_activation_layer_matches_torch(name):
    reference = {
        "relu": F.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "elu": F.elu,
        "selu": F.selu,
        "gelu": F.gelu,
        "swish": F.silu,
        "softplus": F.softplus,
        "linear": lambda t: t,
    }[name]
    layer = L.Activation(name)
    check_layer(layer, (7,), (7,), 0)
    x = torch.linspace(-4, 4, 14).reshape(2, 7)
    torch.testing.assert_close(layer(x), reference(x))


def test_softmax_normalises_the_channel_axis():
    layer = L.Activation("softmax")
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 5)).astype(np.float32)  # NHWC, softmax over C
    y = run(layer, x)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(-1, keepdims=True), rtol=1e-5)


def test_relu_max_value_negative_slope_threshold_follow_keras():
    x = torch.tensor([[-2.0, -0.5, 0.5, 1.5, 7.0]])
    torch.testing.assert_close(L.ReLU(6.0)(x), torch.tensor([[0.0, 0.0, 0.5, 1.5, 6.0]]))
    keras = L.ReLU(max_value=5.0, negative_slope=0.1, threshold=1.0)
    # Keras: max_value if x >= max_value; x if threshold <= x; negative_slope * (x - threshold) otherwise
    torch.testing.assert_close(keras(x), torch.tensor([[-0.3, -0.15, -0.05, 1.5, 5.0]]))
    at_threshold = L.ReLU(threshold=0.5)(torch.tensor([[0.5, 0.25, 0.75]]))
    torch.testing.assert_close(at_threshold, torch.tensor([[0.0, 0.0, 0.75]]))  # Keras keeps x only above it
    check_layer(L.ReLU(6.0), (4, 4, 2), (4, 4, 2), 0)


def test_leaky_relu_default_slope():
    layer = L.LeakyReLU()
    check_layer(layer, (3,), (3,), 0)
    torch.testing.assert_close(layer(torch.tensor([[-1.0, 0.0, 2.0]])), torch.tensor([[-0.3, 0.0, 2.0]]))


def test_rescaling_maps_pixels():
    layer = L.Rescaling(1 / 127.5, offset=-1)
    check_layer(layer, (4, 4, 3), (4, 4, 3), 0)
    torch.testing.assert_close(layer(torch.tensor([[0.0, 127.5, 255.0]])), torch.tensor([[-1.0, 0.0, 1.0]]))


@pytest.mark.parametrize(
    ("padding", "pads"),
    [(1, ((1, 1), (1, 1))), ((2, 1), ((2, 2), (1, 1))), (((0, 1), (0, 1)), ((0, 1), (0, 1)))],
)
def test_zero_padding2d_forms(padding, pads):
    layer = L.ZeroPadding2D(padding)
    (top, bottom), (left, right) = pads
    check_layer(layer, (5, 6, 2), (5 + top + bottom, 6 + left + right, 2), 0)
    x = np.random.default_rng(3).normal(size=(1, 5, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(run(layer, x), np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0))))


def test_input_declares_the_shape():
    assert L.Input(shape=(28, 28, 1)).shape == (None, 28, 28, 1)  # Keras's: batch axis first
    assert L.Input(shape=(28, 28, 1)).example_shape == (28, 28, 1)
    with pytest.raises(ConfigError, match=r"such as \(28, 28, 1\)\. Received: shape=\(None, 28, 28, 1\)"):
        L.Input(shape=(None, 28, 28, 1))


def test_layer_names_count_like_keras():
    names = [L.Conv2D(1, 1).name, L.Conv2D(1, 1).name, L.MaxPooling2D().name, L.BatchNormalization().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "batch_normalization"]
    assert [L.ReLU().name, L.DepthwiseConv2D(3).name, L.GlobalAveragePooling2D().name] == [
        "re_lu",
        "depthwise_conv2d",
        "global_average_pooling2d",
    ]
    assert L.Dense(1, name="logits").name == "logits"
    with pytest.raises(ConfigError, match="expected `name` to be letters"):
        L.Dense(1, name="my layer")


def test_unbuilt_layer_has_no_shape_yet():
    with pytest.raises(ShapeError, match="is not built yet"):
        _ = L.Dense(3).output_shape


def test_layer_rebuilt_with_another_shape_is_an_error():
    layer = L.Dense(3)
    layer.build((4,))
    layer.build((4,))  # same shape: fine
    with pytest.raises(ShapeError, match=r"was built for input shape \(4,\) and cannot take \(5,\)"):
        layer.build((5,))


def test_trainable_false_freezes_parameters():
    layer = L.Dense(3)
    layer.build((4,))
    layer.trainable = False
    assert layer.count_trainable_params() == 0 and layer.count_params() == 15
    assert not any(p.requires_grad for p in layer.parameters())


def test_softmax_layer_along_keras_axes():
    out = check_layer(L.Softmax(), (4, 5, 3), (4, 5, 3), 0)  # channels: each pixel's three values sum to 1
    np.testing.assert_allclose(out.sum(dim=-1).numpy(), 1.0, rtol=1e-6)
    layer = L.Softmax(axis=1)  # along the height, in Keras's layout
    layer.build((4, 5, 3))
    x = torch.randn(2, 3, 4, 5)  # internal (N, C, H, W)
    torch.testing.assert_close(layer(x), torch.softmax(x, dim=2))
    assert L.Softmax(axis=2).get_config()["axis"] == 2
    with pytest.raises(ConfigError, match="0 is the batch axis"):
        L.Softmax(axis=0)
    with pytest.raises(ShapeError, match="axis=3 is outside an input of rank 1"):
        L.Softmax(axis=3).build((10,))
