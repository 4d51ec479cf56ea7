"""layer.weights, trainable_weights and non_trainable_weights, counted and laid out as Keras does."""

import numpy as np
import pytest

import hubel
from hubel import layers as L
from hubel.errors import ShapeError


def test_weights_are_listed_named_and_shaped_as_in_keras():
    model = hubel.Sequential([L.Input((28, 28, 1)), L.Conv2D(8, 3), L.BatchNormalization(), L.Flatten(), L.Dense(10)])
    # Keras 3.15 on the same layers: 8 weights, 6 trainable, 2 non-trainable (BN's moving statistics)
    assert (len(model.weights), len(model.trainable_weights), len(model.non_trainable_weights)) == (8, 6, 2)
    assert [weight.path for weight in model.weights] == [
        "sequential/conv2d/kernel", "sequential/conv2d/bias", "sequential/batch_normalization/gamma",
        "sequential/batch_normalization/beta", "sequential/batch_normalization/moving_mean",
        "sequential/batch_normalization/moving_variance", "sequential/dense/kernel", "sequential/dense/bias",
    ]  # fmt: skip
    assert model.weights[0].shape == (3, 3, 1, 8) and model.weights[6].shape == (5408, 10)  # Keras's layouts
    for weight, array in zip(model.weights, model.get_weights()):
        np.testing.assert_array_equal(weight.numpy(), array)
    model.layers[0].trainable = False
    assert (len(model.trainable_weights), len(model.non_trainable_weights)) == (4, 4)  # as Keras moves them


def test_weight_paths_follow_keras_name_scopes():
    # each expected list is what Keras 3.15.1 printed for the same models
    inner = hubel.Sequential([L.Input((4,)), L.Dense(3, name="d_in")], name="inner")
    outer = hubel.Sequential([L.Input((4,)), inner, L.Dense(2, name="d_out")], name="outer")
    assert [w.path for w in outer.weights] == ["inner/d_in/kernel", "inner/d_in/bias", "outer/d_out/kernel",
                                               "outer/d_out/bias"]  # fmt: skip
    lazy = hubel.Sequential([L.Dense(2, name="d_lazy")], name="lazy")
    lazy.build((None, 5))
    assert [w.path for w in lazy.weights] == ["lazy/d_lazy/kernel", "lazy/d_lazy/bias"]
    inputs = L.Input((6,))
    functional = hubel.Model(inputs, L.Dense(2, name="d_f")(inputs), name="func")
    wrapped = hubel.Sequential([L.Input((6,)), functional], name="wrap")
    assert [w.path for w in wrapped.weights] == ["d_f/kernel", "d_f/bias"]  # built before the Sequential
    alone = L.Dense(2, name="d_alone")
    alone.build((3,))
    assert [w.path for w in alone.weights] == ["d_alone/kernel", "d_alone/bias"]


def test_a_frozen_backbone_leaves_the_heads_weights_to_train():
    base = hubel.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False, weights=None)
    # Keras 3.15's MobileNetV2 without its top: 260 weights, 156 trainable, 104 non-trainable
    assert (len(base.weights), len(base.trainable_weights), len(base.non_trainable_weights)) == (260, 156, 104)
    base.trainable = False
    inputs = L.Input((96, 96, 3))
    model = hubel.Model(inputs, L.Dense(1)(L.GlobalAveragePooling2D()(base(inputs, training=False))))
    assert len(model.trainable_weights) == 2  # the transfer-learning tutorial's check


def test_assign_takes_keras_layout():
    layer = L.Conv2D(4, 3)
    layer.build((8, 8, 2))
    kernel = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    layer.weights[0].assign(kernel)
    np.testing.assert_array_equal(layer.get_weights()[0], kernel)
    with pytest.raises(ShapeError, match=r"conv2d.*/kernel: expected an array of shape \(3, 3, 2, 4\)"):
        layer.weights[0].assign(kernel.transpose(3, 2, 0, 1))  # torch's layout
