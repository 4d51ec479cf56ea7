import numpy as np
import pytest
import torch

import hubel
from hubel import layers as L
from hubel.errors import ShapeError
from hubel.layers.base import internal_to_keras, keras_to_internal
from hubel.models.spec import model_from_spec


def test_the_output_is_the_input_plus_its_layers_output():
    conv = L.Conv2D(4, 3, padding="same", activation="relu")
    block = L.Residual([conv])
    block.build((5, 5, 4))
    x = torch.randn(2, 5, 5, 4)
    expected = x + internal_to_keras(conv(keras_to_internal(x)))
    assert torch.allclose(internal_to_keras(block(keras_to_internal(x))), expected)
    assert block.count_params() == conv.count_params() == 3 * 3 * 4 * 4 + 4
    assert block.macs() == conv.macs()


def test_gradients_reach_the_layers_before_through_the_skip():
    model = hubel.Sequential(
        [L.Input((6, 6, 2)), L.Conv2D(4, 1), L.Residual([L.Conv2D(4, 3, padding="same")]), L.Flatten(), L.Dense(1)]
    )
    with torch.no_grad():
        model.get_layer("residual").body[0].kernel.zero_()  # f(x) = bias: only the skip carries the signal
    model(np.ones((1, 6, 6, 2), dtype=np.float32)).sum().backward()
    assert model.get_layer("conv2d").kernel.grad.abs().sum() > 0


def test_a_block_that_changes_the_shape_is_refused_and_the_model_kept():
    model = hubel.Sequential([L.Input((8, 8, 3)), L.Conv2D(8, 3, padding="same")])
    with pytest.raises(ShapeError, match=r"output \(6, 6, 16\).*padding='same', strides 1 and 8 filters"):
        model.add(L.Residual([L.Conv2D(16, 3)]))
    assert [layer.name for layer in model.layers] == ["conv2d"]


def test_freezing_a_block_freezes_its_layers():
    block = L.Residual([L.Conv2D(3, 3, padding="same"), L.BatchNormalization()])
    block.build((4, 4, 3))
    block.trainable = False
    assert block.count_trainable_params() == 0 and not any(p.requires_grad for p in block.parameters())


def test_a_spec_writes_blocks_with_the_shorthands_and_the_model_file_keeps_them(tmp_path):
    spec = {
        "input_shape": [8, 8, 1],
        "layers": [
            {"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same"}},
            {"Residual": {"layers": [{"Conv2D": {"filters": 4, "kernel_size": 3, "padding": "same"}}, "ReLU"]}},
            "GlobalAveragePooling2D",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
    }
    model = model_from_spec(spec)
    assert [type(layer).__name__ for layer in model.get_layer("residual").body] == ["Conv2D", "ReLU"]
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    loaded = hubel.load_model(model.save(tmp_path / "res.hubel"))
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(hubel.errors.UnknownNameError, match=r"Residual layer 1: .*Did you mean 'ReLU'"):
        L.Residual([{"Conv2D": {"filters": 4, "kernel_size": 3}}, {"ReLu": {}}])
    with pytest.raises(hubel.errors.ConfigError, match="non-empty list of layers"):
        L.Residual("ReLU")
