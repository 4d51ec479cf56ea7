import pytest
import torch

from helpers import check_layer
from hubel import layers as L
from hubel.errors import ConfigError


def test_batchnorm_counts_moving_statistics_as_non_trainable_weights():
    layer = L.BatchNormalization()
    check_layer(layer, (26, 26, 64), (26, 26, 64), expected_params=256, expected_trainable=128)
    assert (layer.momentum, layer.epsilon) == (0.99, 1e-3)


def test_batchnorm_training_uses_batch_stats_and_updates_moving_stats_keras_style():
    layer = L.BatchNormalization()
    layer.build((3,))
    x = torch.randn(64, 3) * 2 + 5
    layer.train()
    y = layer(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    expected_mean = 0.99 * 0.0 + 0.01 * x.mean(0)  # Keras: moving * momentum + batch * (1 - momentum)
    torch.testing.assert_close(layer.moving_mean, expected_mean)
    layer.eval()
    expected = (x - layer.moving_mean) / torch.sqrt(layer.moving_variance + 1e-3)
    torch.testing.assert_close(layer(x), expected)


def test_batchnorm_frozen_runs_in_inference_mode_like_keras():
    layer = L.BatchNormalization()
    layer.build((4, 4, 2))
    layer.trainable = False
    layer.train()
    x = torch.randn(8, 2, 4, 4) + 3
    torch.testing.assert_close(layer(x), x / torch.sqrt(torch.tensor(1.0 + 1e-3)))
    assert torch.equal(layer.moving_mean, torch.zeros(2))  # no update while frozen
    assert layer.count_trainable_params() == 0


def test_batchnorm_without_center_and_scale_and_axis():
    check_layer(L.BatchNormalization(center=False, scale=False), (5,), (5,), 10, 0)
    with pytest.raises(ConfigError, match="only axis=-1"):
        L.BatchNormalization(axis=1)


def test_batchnorm_moving_variance_follows_the_biased_batch_variance_as_keras():
    layer = L.BatchNormalization()
    layer.build((1,))
    layer.train()
    x = torch.tensor([[1.0], [2.0], [4.0], [7.0]])  # Keras's repro: Input((1,)), batch 4, two steps
    expected = torch.ones(1)
    for _ in range(2):
        layer(x)
        expected = expected * 0.99 + x.var(0, unbiased=False) * 0.01  # Keras: moving·m + batch·(1 − m)
    torch.testing.assert_close(layer.moving_variance, expected)
    spatial = L.BatchNormalization(momentum=0.5)
    spatial.build((3, 3, 2))
    spatial.train()
    images = torch.randn(2, 2, 3, 3)  # channels first inside
    spatial(images)
    biased = images.permute(1, 0, 2, 3).reshape(2, -1).var(1, unbiased=False)
    torch.testing.assert_close(spatial.moving_variance, 0.5 + 0.5 * biased)


def test_batchnorm_trains_on_a_batch_of_one_as_keras():
    layer = L.BatchNormalization(beta_initializer="ones")
    layer.build((3,))
    layer.train()
    x = torch.tensor([[2.0, -1.0, 5.0]], requires_grad=True)
    y = layer(x)  # one value per channel: normalised to 0, so the output is beta
    torch.testing.assert_close(y, torch.ones(1, 3))
    torch.testing.assert_close(layer.moving_mean, 0.01 * x.detach()[0])
    torch.testing.assert_close(layer.moving_variance, torch.full((3,), 0.99))
    y.sum().backward()
    assert layer.beta.grad is not None
