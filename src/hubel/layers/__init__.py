"""Keras-semantics layers on torch.nn: `from hubel import layers as L`."""

from hubel.layers.activations import list_activations
from hubel.layers.augment import (
    RandomBrightness,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from hubel.layers.base import LAYERS, Layer, clear_session, list_layers, register_layer
from hubel.layers.conv import Conv1D, Conv2D, DepthwiseConv2D, PatchWhitening
from hubel.layers.core import (
    Activation,
    Dense,
    Dropout,
    Flatten,
    Input,
    InputLayer,
    LeakyReLU,
    ReLU,
    Rescaling,
    Reshape,
    Softmax,
    ZeroPadding2D,
)
from hubel.layers.initializers import list_initializers
from hubel.layers.merge import (
    Add,
    Average,
    Concatenate,
    Maximum,
    Minimum,
    Multiply,
    Subtract,
    add,
    average,
    concatenate,
    maximum,
    minimum,
    multiply,
    subtract,
)
from hubel.layers.normalization import BatchNormalization
from hubel.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPooling1D,
    MaxPooling2D,
)
from hubel.layers.residual import Residual
from hubel.layers.text import Embedding, TextVectorization

# Keras's short aliases
MaxPool2D, AvgPool2D, MaxPool1D, AvgPool1D = MaxPooling2D, AveragePooling2D, MaxPooling1D, AveragePooling1D
Convolution2D, Convolution1D = Conv2D, Conv1D

__all__ = [
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Convolution1D",
    "Convolution2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "Layer",
    "LeakyReLU",
    "MaxPool1D",
    "MaxPool2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Multiply",
    "PatchWhitening",
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "ReLU",
    "Rescaling",
    "Reshape",
    "Residual",
    "Softmax",
    "Subtract",
    "TextVectorization",
    "ZeroPadding2D",
    "add",
    "average",
    "clear_session",
    "concatenate",
    "list_activations",
    "list_initializers",
    "list_layers",
    "maximum",
    "minimum",
    "multiply",
    "register_layer",
    "subtract",
]

for _alias, _layer in {
    "MaxPool2D": MaxPooling2D,
    "AvgPool2D": AveragePooling2D,
    "MaxPool1D": MaxPooling1D,
    "AvgPool1D": AveragePooling1D,
    "Convolution2D": Conv2D,
    "Convolution1D": Conv1D,
}.items():
    LAYERS.register(_alias)(_layer)  # so specs may use Keras's short names too
