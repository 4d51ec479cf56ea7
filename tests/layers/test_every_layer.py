"""Every registered layer passes check_layer; a new layer without a sample here fails the suite."""

import pytest

from helpers import check_layer
from hubel import layers as L
from hubel.layers.base import LAYERS

SAMPLES = {
    "Activation": (lambda: L.Activation("tanh"), (4, 4, 3)),
    "Add": (lambda: L.Add(), [(4, 4, 3), (4, 4, 3)]),
    "Average": (lambda: L.Average(), [(4, 3), (1, 3)]),
    "Concatenate": (lambda: L.Concatenate(), [(4, 4, 3), (4, 4, 2)]),
    "InputLayer": (lambda: L.InputLayer((4, 4, 3)), (4, 4, 3)),
    "Maximum": (lambda: L.Maximum(), [(5,), (5,), (5,)]),
    "Minimum": (lambda: L.Minimum(), [(5,), (5,)]),
    "Multiply": (lambda: L.Multiply(), [(4, 4, 3), (4, 4, 1)]),
    "Subtract": (lambda: L.Subtract(), [(4, 4, 3), (4, 4, 3)]),
    "AveragePooling1D": (lambda: L.AveragePooling1D(2), (9, 3)),
    "AveragePooling2D": (lambda: L.AveragePooling2D(2, padding="same"), (5, 5, 3)),
    "BatchNormalization": (lambda: L.BatchNormalization(), (4, 4, 3)),
    "Conv1D": (lambda: L.Conv1D(4, 3, padding="same"), (9, 3)),
    "Conv2D": (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (5, 5, 3)),
    "Dense": (lambda: L.Dense(5, activation="softmax"), (7,)),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (5, 5, 3)),
    "PatchWhitening": (lambda: L.PatchWhitening(2, padding="same"), (5, 5, 3)),
    "Dropout": (lambda: L.Dropout(0.2), (7,)),
    "Embedding": (lambda: L.Embedding(50, 4), (6,)),
    "Flatten": (lambda: L.Flatten(), (4, 4, 3)),
    "GlobalAveragePooling1D": (lambda: L.GlobalAveragePooling1D(), (9, 3)),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(), (4, 4, 3)),
    "GlobalMaxPooling1D": (lambda: L.GlobalMaxPooling1D(), (9, 3)),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(), (4, 4, 3)),
    "LeakyReLU": (lambda: L.LeakyReLU(0.1), (4, 4, 3)),
    "MaxPooling1D": (lambda: L.MaxPooling1D(3, padding="same"), (9, 3)),
    "MaxPooling2D": (lambda: L.MaxPooling2D(3, strides=2), (7, 7, 3)),
    "RandomBrightness": (lambda: L.RandomBrightness(0.2), (4, 4, 3)),
    "RandomContrast": (lambda: L.RandomContrast(0.2), (4, 4, 3)),
    "RandomCrop": (lambda: L.RandomCrop(3, 3, padding=1), (4, 4, 3)),
    "RandomFlip": (lambda: L.RandomFlip(), (4, 4, 3)),
    "RandomRotation": (lambda: L.RandomRotation(0.1), (4, 4, 3)),
    "RandomTranslation": (lambda: L.RandomTranslation(0.1, 0.1), (4, 4, 3)),
    "RandomZoom": (lambda: L.RandomZoom(0.1, 0.2), (4, 4, 3)),
    "ReLU": (lambda: L.ReLU(6.0), (4, 4, 3)),
    "Rescaling": (lambda: L.Rescaling(1 / 255), (4, 4, 3)),
    "Softmax": (lambda: L.Softmax(axis=1), (4, 4, 3)),
    "Residual": (lambda: L.Residual([L.Conv2D(3, 3, padding="same"), L.BatchNormalization(), "ReLU"]), (4, 4, 3)),
    "Reshape": (lambda: L.Reshape((-1,)), (4, 4, 3)),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(((0, 1), (2, 0))), (4, 4, 3)),
}
ALIASES = {"MaxPool2D", "AvgPool2D", "MaxPool1D", "AvgPool1D", "Convolution2D", "Convolution1D"}
MODELS = {"Model", "Functional", "Sequential"}  # registered so a model nests in a model file; tests/models
STRINGS = {"TextVectorization"}  # takes strings, not tensors: tests/layers/test_text.py


@pytest.mark.parametrize("name", sorted(set(LAYERS.names()) - ALIASES - MODELS - STRINGS))
def test_every_registered_layer_passes_check_layer(name):
    assert name in SAMPLES, f"add a sample for the new layer {name} to SAMPLES"
    make, input_shape = SAMPLES[name]
    layer = make()
    assert type(layer).__name__ == name
    check_layer(layer, input_shape)


def test_aliases_resolve_to_the_keras_classes():
    assert L.MaxPool2D is L.MaxPooling2D and LAYERS.get("AvgPool2D") is L.AveragePooling2D
    assert ALIASES <= set(L.list_layers())
