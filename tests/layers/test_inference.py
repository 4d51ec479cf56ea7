"""hubel.layers.inference: the paths taken when no gradient is asked give the values of torch's
public operators, and stand aside whenever a gradient may be."""

import pytest
import torch
import torch.nn.functional as F

from hubel import layers as L
from hubel.layers import inference
from hubel.layers.base import keras_to_internal
from hubel.layers.inference import (
    conv2d_for_inference,
    gradient_needed,
    linear_for_inference,
    max_pool_for_inference,
)


def random(*shape: int, seed: int = 0) -> torch.Tensor:
    """Normal values; a 4D tensor is channels_last, as hubel's layers hold images."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@pytest.mark.parametrize("size", [(8, 8), (7, 9), (13, 13)])
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (2, 3)])
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_max_pool_equals_torchs_pooling(size, pool, layout):
    x = random(3, 5, *size)
    x = x.contiguous() if layout == "contiguous" else x
    x[0, 0, 0, 0], x[1, 2, 1, 1], x[2, 4] = float("nan"), float("-inf"), 0.0  # NaN wins; -inf and ties
    expected = F.max_pool2d(x, pool, pool)
    pooled = max_pool_for_inference(x, pool, pool)
    assert pooled.shape == expected.shape
    assert torch.equal(pooled.nan_to_num(7.0), expected.nan_to_num(7.0))
    assert torch.isnan(pooled[0, 0, 0, 0])


def test_max_pool_1d_equals_torchs_pooling():
    x = random(4, 23, 16).transpose(1, 2)  # (N, C, steps), channels last in memory
    assert torch.equal(max_pool_for_inference(x, (5,), (5,)), F.max_pool1d(x, 5))


def test_max_pool_stands_aside_for_overlapping_windows_gradients_and_empty_outputs():
    x = random(2, 3, 8, 8)
    assert max_pool_for_inference(x, (3, 3), (2, 2)) is None
    assert max_pool_for_inference(random(2, 3, 1, 8), (2, 2), (2, 2)) is None
    x.requires_grad_(True)
    assert gradient_needed(x)
    assert max_pool_for_inference(x, (2, 2), (2, 2)) is None
    with torch.no_grad():
        assert not gradient_needed(x)
        assert max_pool_for_inference(x, (2, 2), (2, 2)) is not None


def test_max_pooling_layer_trains_as_torch_pools_ties_to_the_first_maximum():
    layer = L.MaxPooling2D(2)
    layer.build((4, 4, 1))
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)  # every window a tie
    layer(x).sum().backward()
    expected = torch.zeros(1, 1, 4, 4)
    expected[..., ::2, ::2] = 1.0  # each window's first element alone
    assert torch.equal(x.grad, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
def test_max_pooling_layer_s_gradient_equals_torchs(dtype, size):
    layer = L.MaxPooling2D(2)
    layer.build((*size, 6))
    x = random(4, 6, *size, seed=8).to(dtype).relu()  # ReLU's zeros: windows with ties
    gradient = random(4, 6, size[0] // 2, size[1] // 2, seed=9).to(dtype)
    ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    pooled = layer(ours)
    assert "Unpooled" in type(pooled.grad_fn).__name__  # training takes the max_unpool2d backward
    pooled.backward(gradient)
    F.max_pool2d(theirs, 2).backward(gradient)
    assert torch.equal(pooled, F.max_pool2d(x, 2))
    assert torch.equal(ours.grad, theirs.grad)


def test_the_pinned_torch_has_onednn_s_fused_operators():
    # Without them every Dense and Conv2D falls back to the public path, slower on AMD CPUs.
    assert inference._onednn_available()


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_f_linear(activation, bias):
    x, weight = random(16, 37, seed=1), random(11, 37, seed=2)
    b = random(11, seed=3) if bias else None
    expected = F.linear(x, weight, b)
    expected = expected.relu() if activation == "relu" else expected
    torch.testing.assert_close(linear_for_inference(x, weight, b, activation), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "strides, padding, dilation, groups", [((1, 1), (0, 0), (1, 1), 1), ((2, 2), (1, 1), (1, 1), 1),
                                           ((1, 1), (2, 2), (2, 2), 1), ((1, 1), (1, 1), (1, 1), 6)]
)  # fmt: skip
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_conv2d_equals_f_conv2d(strides, padding, dilation, groups, activation):
    x, kernel = random(3, 6, 11, 10, seed=4), random(12, 6 // groups, 3, 3, seed=5)
    bias = random(12, seed=6)
    expected = F.conv2d(x, kernel, bias, strides, padding, dilation, groups)
    expected = expected.relu() if activation == "relu" else expected
    result = conv2d_for_inference(x, kernel, bias, strides, padding, dilation, groups, activation)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
    assert result.is_contiguous(memory_format=torch.channels_last)


def test_onednn_paths_stand_aside():
    x, weight = random(4, 8), random(3, 8)
    assert linear_for_inference(x, weight, None, "tanh") is None  # nothing fused for it
    assert linear_for_inference(x.bfloat16(), weight.bfloat16(), None, "relu") is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear_for_inference(x, weight, None, "relu") is None
    weight.requires_grad_(True)
    assert linear_for_inference(x, weight, None, "relu") is None
    with torch.no_grad():
        assert linear_for_inference(x, weight, None, "relu") is not None


def test_without_onednn_the_layers_take_the_public_path(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    inference._onednn_available.cache_clear()
    try:
        x, weight = random(4, 8), random(3, 8)
        assert linear_for_inference(x, weight, None, "relu") is None
        dense = L.Dense(3, activation="relu")
        dense.build((8,))
        with torch.no_grad():
            torch.testing.assert_close(dense(x), F.linear(x, dense.kernel, dense.bias).relu())
    finally:
        inference._onednn_available.cache_clear()


@pytest.mark.parametrize(
    "layer, shape",
    [(L.Conv2D(8, 3, activation="relu"), (9, 9, 3)), (L.Conv2D(8, 3, strides=2, padding="same"), (9, 9, 3)),
     (L.DepthwiseConv2D(3, activation="relu"), (9, 9, 4)), (L.Dense(5, activation="relu"), (12,)),
     (L.Dense(5, activation="tanh"), (12,)), (L.MaxPooling2D(2), (9, 9, 3))],
)  # fmt: skip
def test_layers_give_the_same_outputs_with_and_without_gradients(layer, shape):
    layer.build(shape)
    x = keras_to_internal(torch.randn(6, *shape, generator=torch.Generator().manual_seed(7)))
    with torch.no_grad():
        inferred = layer(x)
    trained = layer(x.requires_grad_(True))
    assert trained.requires_grad
    torch.testing.assert_close(inferred, trained.detach(), rtol=1e-5, atol=1e-5)
