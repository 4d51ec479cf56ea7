import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import check_layer
from hubel import layers as L
from hubel.errors import ConfigError, ShapeError
from hubel.layers.base import internal_to_keras, keras_to_internal


def numpy_conv2d_tf_same(x, kernel, stride):
    """Naive TF 'SAME' convolution, one loop per output pixel. x: (H, W, C), kernel: (kh, kw, C, F)."""
    height, width, _ = x.shape
    kh, kw, _, filters = kernel.shape
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    padded = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    y = np.zeros((out_h, out_w, filters))
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            y[i, j] = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2]))
    return y


def run(layer, x_nhwc):
    with torch.no_grad():
        return internal_to_keras(layer(keras_to_internal(torch.as_tensor(x_nhwc, dtype=torch.float32)))).numpy()


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "output_shape", "params"),
    [
        ((28, 28, 1), dict(filters=64, kernel_size=(3, 3)), (26, 26, 64), 640),
        ((11, 11, 64), dict(filters=64, kernel_size=3), (9, 9, 64), 36928),
        ((32, 32, 3), dict(filters=32, kernel_size=3, padding="same"), (32, 32, 32), 896),
        ((7, 7, 3), dict(filters=8, kernel_size=3, strides=2, padding="same"), (4, 4, 8), 224),
        ((8, 8, 3), dict(filters=8, kernel_size=3, strides=2, padding="same", use_bias=False), (4, 4, 8), 216),
        ((9, 9, 4), dict(filters=4, kernel_size=3, dilation_rate=2), (5, 5, 4), 148),
        ((6, 6, 4), dict(filters=8, kernel_size=1, groups=2), (6, 6, 8), 24),
    ],
)
def test_conv2d_passes_check_layer(input_shape, kwargs, output_shape, params):
    check_layer(L.Conv2D(**kwargs), input_shape, output_shape, params)


@pytest.mark.parametrize("size", [7, 8])  # odd and even: TF puts the odd padding at the bottom/right
@pytest.mark.parametrize("kernel", [2, 3])
def test_conv2d_same_stride2_matches_naive_tf_convolution(size, kernel):
    layer = L.Conv2D(5, kernel, strides=2, padding="same")
    layer.build((size, size + 1, 3))
    x = np.random.default_rng(0).normal(size=(2, size, size + 1, 3)).astype(np.float32)
    kernel_hwcf = layer.kernel.detach().permute(2, 3, 1, 0).numpy()  # torch (F, C, kh, kw) -> (kh, kw, C, F)
    bias = layer.bias.detach().numpy()
    expected = np.stack([numpy_conv2d_tf_same(image, kernel_hwcf, 2) + bias for image in x])
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [7, 8])
def test_conv2d_same_stride2_matches_torch_with_explicit_padding(size):
    layer = L.Conv2D(4, 3, strides=2, padding="same")
    layer.build((size, size, 2))
    x = torch.randn(3, 2, size, size)
    pad_total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
    before, after = pad_total // 2, pad_total - pad_total // 2
    expected = F.conv2d(F.pad(x, (before, after, before, after)), layer.kernel, layer.bias, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected)
    assert (before, after) == ((1, 1) if size == 7 else (0, 1))


def test_conv2d_glorot_uniform_initialisation_like_keras():
    layer = L.Conv2D(64, 3)
    layer.build((28, 28, 32))
    limit = math.sqrt(6 / (3 * 3 * 32 + 3 * 3 * 64))  # Keras fans: receptive field x channels
    kernel = layer.kernel.detach()
    assert kernel.abs().max() <= limit
    assert abs(kernel.std().item() - limit / math.sqrt(3)) < 0.01 * limit
    assert torch.count_nonzero(layer.bias) == 0


def test_conv2d_activation_is_applied():
    layer = L.Conv2D(4, 3, activation="relu")
    y = check_layer(layer, (5, 5, 2))
    assert (y >= 0).all()


@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("make", [lambda a: L.Conv2D(4, 3, activation=a), lambda a: L.Dense(5, activation=a)])
def test_activation_in_place_on_a_fresh_output_gives_torchs_values_and_gradients(make, activation):
    """Conv and Dense apply relu/relu6 in place on their own output; forward and backward must
    equal the out-of-place functional form, with and without autograd."""
    torch.manual_seed(0)
    layer = make(activation)
    shape = (5, 5, 2) if isinstance(layer, L.Conv2D) else (6,)
    layer.build(shape)
    x = torch.randn(3, *(shape[-1:] + shape[:-1]), requires_grad=True)  # internal layout (N, C, ...)
    if isinstance(layer, L.Conv2D):
        reference_pre = F.conv2d(x, layer.kernel, layer.bias)
    else:
        reference_pre = F.linear(x, layer.kernel, layer.bias)
    reference = F.relu(reference_pre) if activation == "relu" else F.relu6(reference_pre)
    y = layer(x)
    torch.testing.assert_close(y, reference)
    assert (y > 0).any() and (y == 0).any()  # both sides of the kink are exercised
    weights = [x, layer.kernel, layer.bias]
    got = torch.autograd.grad((y * y).sum(), weights)
    expected = torch.autograd.grad((reference * reference).sum(), weights)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x.detach()), reference.detach())


def test_the_activation_layer_leaves_its_input_alone():
    x = torch.randn(2, 3, 4, 4)
    before = x.clone()
    assert (L.Activation("relu")(x) >= 0).all()
    torch.testing.assert_close(x, before)


@pytest.mark.parametrize(("size", "pads"), [(7, (1, 1)), (8, (0, 1))])
def test_depthwise_conv2d_matches_per_channel_convolution(size, pads):
    layer = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)
    out = math.ceil(size / 2)
    check_layer(layer, (size, size, 3), (out, out, 6), 3 * 2 * 9 + 6)
    x = torch.randn(2, 3, size, size)
    before, after = pads  # TF: the odd padding goes after
    padded = F.pad(x, (before, after, before, after))
    expected = torch.cat(
        [
            F.conv2d(padded[:, c : c + 1], layer.kernel[2 * c : 2 * c + 2], layer.bias[2 * c : 2 * c + 2], stride=2)
            for c in range(3)
        ],
        dim=1,
    )
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected)


def test_depthwise_conv2d_mobilenet_block_params():
    check_layer(L.DepthwiseConv2D(3, padding="same", use_bias=False), (112, 112, 32), (112, 112, 32), 288)


def test_conv1d_imdb_shapes_and_causal_padding():
    check_layer(L.Conv1D(128, 5, activation="relu"), (500, 32), (496, 128), 5 * 32 * 128 + 128)
    causal = L.Conv1D(2, 3, padding="causal", dilation_rate=2)
    check_layer(causal, (12, 3), (12, 2))
    x = torch.randn(1, 3, 12)
    changed = x.clone()
    changed[..., 7:] += 1.0  # the future must not leak into outputs 0..6
    with torch.no_grad():
        torch.testing.assert_close(causal(x)[..., :7], causal(changed)[..., :7])
        assert not torch.allclose(causal(x)[..., 7:], causal(changed)[..., 7:])


def test_conv1d_same_matches_torch_with_explicit_padding():
    layer = L.Conv1D(3, 4, strides=3, padding="same")
    layer.build((10, 2))
    x = torch.randn(2, 2, 10)
    # ceil(10 / 3) = 4 outputs need (4 - 1) * 3 + 4 - 10 = 3 padding: 1 before, 2 after
    expected = F.conv1d(F.pad(x, (1, 2)), layer.kernel, layer.bias, stride=3)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected)


def test_conv_kernel_larger_than_input_names_layer_formula_and_fix():
    layer = L.Conv2D(8, 5, name="conv2d_3")
    layer.after = "max_pooling2d_1"
    with pytest.raises(ShapeError) as error:
        layer.build((3, 3, 64))
    assert str(error.value) == (
        "Conv2D 'conv2d_3' cannot take input shape (3, 3, 64) (after max_pooling2d_1): output height = "
        "(H − F + 2P)/S + 1 = (3 − 5 + 2×0)/1 + 1 = -1, less than 1. Use padding='same' or a kernel_size "
        "of at most 3x3."
    )


def test_conv_wrong_rank_says_what_layout_it_expects():
    with pytest.raises(ShapeError, match=r"rank 3, \(height, width, channels\), but it has rank 1"):
        L.Conv2D(8, 3).build((784,))
    with pytest.raises(ShapeError, match=r"For one channel, add the channel axis: input_shape=\(28, 28, 1\)\.$"):
        L.Conv2D(8, 3).build((28, 28))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(filters=0, kernel_size=3), "Conv2D: expected `filters` to be a positive integer. Received: filters=0"),
        (
            dict(filters=8, kernel_size=3, padding="sane"),
            "Conv2D: expected `padding` to be one of 'valid', 'same'. Received: padding='sane'",
        ),
        (
            dict(filters=8, kernel_size=(3, 0)),
            "Conv2D: expected `kernel_size` to be an integer or a tuple of 2 integers, all positive. "
            "Received: kernel_size=(3, 0)",
        ),
        (
            dict(filters=8, kernel_size=3, activation="rellu"),
            "Unknown activation 'rellu'. Did you mean 'relu', 'relu6', 'elu'? See hubel.layers.list_activations().",
        ),
        (dict(filters=8, kernel_size=3, strides=2, dilation_rate=2), "strides > 1 cannot be combined"),
        (dict(filters=8, kernel_size=3, kernel_initializer="glorot"), "Did you mean 'glorot_normal'"),
        (dict(filters=8, kernel_size=3, filter=8), "unexpected argument `filter` (did you mean `filters`?)"),
    ],
)
def test_conv2d_bad_arguments_are_keras_style(kwargs, message):
    with pytest.raises((ConfigError, KeyError)) as error:
        L.Conv2D(**kwargs)
    assert message in str(error.value)


def test_conv1d_rejects_causal_only_in_2d():
    with pytest.raises(ConfigError, match="Received: padding='causal'"):
        L.Conv2D(4, 3, padding="causal")


def test_depthwise_takes_strides_with_dilation_as_keras_does():
    layer = L.DepthwiseConv2D(3, strides=2, dilation_rate=2, depth_multiplier=2)
    x = torch.randn(1, 3, 11, 11)
    y = layer(x)
    assert layer.compute_output_shape((11, 11, 3)) == (4, 4, 6) == (*y.shape[2:], y.shape[1])
    expected = F.conv2d(x, layer.kernel, layer.bias, stride=2, dilation=2, groups=3)
    assert torch.allclose(y, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="cannot be combined"):
        L.Conv2D(4, 3, strides=2, dilation_rate=2)


def test_weights_in_keras_layout_round_trip():
    conv, depthwise, dense = L.Conv2D(4, (3, 2)), L.DepthwiseConv2D(3, depth_multiplier=2), L.Dense(5)
    conv.build((8, 8, 3)), depthwise.build((8, 8, 3)), dense.build((7,))
    assert [w.shape for w in conv.get_weights()] == [(3, 2, 3, 4), (4,)]
    assert [w.shape for w in depthwise.get_weights()] == [(3, 3, 3, 2), (6,)]
    assert [w.shape for w in dense.get_weights()] == [(7, 5), (5,)]
    kernel = conv.get_weights()[0]  # Keras's kernel[i, j, c, f] is torch's kernel[f, c, i, j]
    assert kernel[2, 1, 0, 3] == conv.kernel[3, 0, 2, 1].item()
    multiplied = depthwise.get_weights()[0]  # output channel c·multiplier + m
    assert multiplied[1, 2, 2, 1] == depthwise.kernel[2 * 2 + 1, 0, 1, 2].item()
    for layer in (conv, depthwise, dense):
        weights = [np.random.rand(*w.shape).astype("float32") for w in layer.get_weights()]
        layer.set_weights(weights)
        assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), weights))
    with pytest.raises(ShapeError, match=r"weight 0 should have shape \(7, 5\)"):
        dense.set_weights([np.zeros((5, 7)), np.zeros(5)])
    with pytest.raises(ConfigError, match="expected 2 arrays"):
        dense.set_weights([np.zeros((7, 5))])


def correlated_images(count=48, size=10, seed=0):
    """Images whose neighbouring pixels and channels are correlated, as in photographs."""
    noise = np.random.default_rng(seed).normal(size=(count, size, size, 3))
    return 0.5 + 0.1 * (noise + np.roll(noise, 1, axis=1) + np.roll(noise, 1, axis=2) + noise[..., :1])


def test_patch_whitening_decorrelates_the_patches_it_was_adapted_to():
    images = correlated_images()
    layer = L.PatchWhitening(2, epsilon=1e-9)
    assert layer.compute_output_shape((10, 10, 3)) == (9, 9, 24)
    layer.adapt(images)
    assert layer.adapted
    with torch.no_grad():
        y = internal_to_keras(layer(keras_to_internal(torch.tensor(images, dtype=torch.float32)))).double()
    first, second = y[..., :12].reshape(-1, 12), y[..., 12:].reshape(-1, 12)
    assert torch.allclose(first.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(first.T @ first / len(first), torch.eye(12, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(second, -first, atol=1e-5)  # the negatives, so that a ReLU loses no direction


def test_patch_whitening_epsilon_damps_the_directions_with_little_variance():
    images = correlated_images()
    damped = L.PatchWhitening(2, epsilon=0.05)
    damped.adapt(images)
    with torch.no_grad():
        y = internal_to_keras(damped(keras_to_internal(torch.tensor(images, dtype=torch.float32)))).double()
    variances = y[..., :12].reshape(-1, 12).square().mean(0).numpy()
    # the patches' covariance computed here in NumPy: filter i's output has variance λi / (λi + ε)
    windows = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2))  # (N, 9, 9, C, 2, 2)
    eigenvalues = np.linalg.eigvalsh(np.cov(windows.reshape(-1, 12).T, bias=True))[::-1]
    np.testing.assert_allclose(variances, eigenvalues / (eigenvalues + 0.05), rtol=1e-3)


def test_patch_whitening_adapt_refuses_what_is_not_a_batch_of_images():
    with pytest.raises(ShapeError, match=r"adapt\(\) takes a batch of images.*\(N, height, width, channels\)"):
        L.PatchWhitening(2).adapt(np.zeros((10, 10, 3)))
    assert not L.PatchWhitening(2).adapted
    with pytest.raises(ConfigError, match="adapt\\(\\) received no images as large as its kernel 3x3"):
        L.PatchWhitening(3, padding="same").adapt(np.zeros((4, 2, 2, 3)))


def test_dirac_passes_the_first_input_channels_through_and_draws_the_rest():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 7, 7).contiguous(memory_format=torch.channels_last)
    widening = L.Conv2D(6, 3, padding="same", use_bias=False, kernel_initializer="dirac")
    widening.build((7, 7, 4))
    y = widening(x)
    assert torch.equal(y[:, :4], x)  # filter i < 4 copies input channel i
    limit = math.sqrt(6 / (9 * 4 + 9 * 6))  # the others: glorot_uniform with Keras's fans
    assert 0 < widening.kernel[4:].abs().max() <= limit and widening.kernel[4:].std() > limit / 3
    square = L.Conv1D(5, 3, padding="same", kernel_initializer="dirac")
    sequence = torch.randn(2, 5, 9)
    square.build((9, 5))
    assert torch.equal(square(sequence), sequence)  # as many filters as channels: the identity
    with pytest.raises(ConfigError, match=r"'dirac' initializer is for kernels .* Received a weight of shape \(6,\)"):
        L.Conv2D(6, 3, bias_initializer="dirac").build((7, 7, 4))
