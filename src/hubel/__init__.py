"""hubel: Keras's words and semantics, PyTorch's engine, for convolutional classifiers.

Example:
    >>> import hubel
    >>> from hubel import layers as L
    >>> model = hubel.Sequential([L.Conv2D(64, (3, 3), activation="relu", input_shape=(28, 28, 1))])
    >>> model.output_shape
    (None, 26, 26, 64)
"""

__version__ = "0.1.0"

import sys

from hubel import data, datasets, errors, layers, train, utils
from hubel.errors import ConfigError, DataError, HubelError, ModelFileError, ShapeError, UnknownNameError
from hubel.layers.base import clear_session
from hubel.models import Model, Sequential, applications, load_model
from hubel.train import callbacks, losses, optimizers
from hubel.train.trainer import set_seed

__all__ = [
    "ConfigError",
    "DataError",
    "HubelError",
    "Model",
    "ModelFileError",
    "Sequential",
    "ShapeError",
    "UnknownNameError",
    "__version__",
    "applications",
    "callbacks",
    "clear_session",
    "data",
    "datasets",
    "errors",
    "layers",
    "load_model",
    "losses",
    "optimizers",
    "set_seed",
    "train",
    "utils",
]


# `import hubel.applications` and `from hubel.applications.mobilenet_v2 import preprocess_input`, as in Keras:
# the package lives in hubel/models/applications and is known under both names.
sys.modules["hubel.applications"] = applications
for _name in ("backbones", "efficientnet_lite", "imagenet", "mobilenet_v2", "transfer"):
    sys.modules[f"hubel.applications.{_name}"] = sys.modules[f"hubel.models.applications.{_name}"]


def __getattr__(name: str) -> object:
    """hubel.inspect is imported on first use (it brings matplotlib, which costs startup time)."""
    if name == "inspect":
        import importlib

        return importlib.import_module("hubel.inspect")
    raise AttributeError(f"module 'hubel' has no attribute {name!r}")
