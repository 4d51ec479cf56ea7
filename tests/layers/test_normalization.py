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
