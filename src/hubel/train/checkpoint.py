"""Training checkpoints: everything a run needs to continue as if never stopped — weights,
optimizer, epoch and step, the epoch's running sums, history, every random state.

Written atomically (hubel.files.atomic_write): a kill at any instant leaves the previous
checkpoint whole. The one before the last is kept beside it (last.ckpt, previous.ckpt): when the
last is damaged (a full disk, a copy cut short), a resume falls back to the previous, with a warning.
Read with torch.load(weights_only=True), which rebuilds
only tensors and plain containers, never arbitrary objects.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubel.errors import HubelError
from hubel.files import atomic_write

__all__ = [
    "CheckpointError",
    "checkpoint_exists",
    "load_checkpoint",
    "previous_checkpoint",
    "random_states",
    "restore_random_states",
    "save_checkpoint",
]


class CheckpointError(HubelError):
    """A checkpoint file is missing or damaged."""


def previous_checkpoint(path: Path) -> Path:
    """Where the checkpoint before `path` is kept: previous.ckpt beside last.ckpt."""
    path = Path(path)
    return path.with_name("previous.ckpt") if path.name == "last.ckpt" else path.with_suffix(".previous.ckpt")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically; the checkpoint that was there becomes the previous one."""
    with atomic_write(path, keep_previous=previous_checkpoint(path)) as file:
        torch.save(state, file)
    return path


def checkpoint_exists(path: Path) -> bool:
    """Whether a resume from `path` has something to load: the file, or the one kept before it."""
    return Path(path).is_file() or previous_checkpoint(path).is_file()


def _read(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds on damaged files
        raise CheckpointError(f"{path}: damaged checkpoint ({str(error).splitlines()[0]})") from None


def load_checkpoint(path: Path, warn: bool = True) -> dict[str, Any]:
    """The state saved at `path`; if that file is missing or damaged, the previous checkpoint's
    (one epoch or one checkpoint interval earlier), with a warning."""
    path, previous = Path(path), previous_checkpoint(path)
    if not path.is_file() and not previous.is_file():
        raise CheckpointError(f"{path}: no checkpoint there. Pass the checkpoint file, or train without resume.")
    try:
        if not path.is_file():  # killed between the two renames of a save
            raise CheckpointError(f"{path}: missing")
        return _read(path)
    except CheckpointError as damaged:
        if not previous.is_file():
            raise CheckpointError(f"{damaged}. Delete it to start over.") from None
        try:
            state = _read(previous)
        except CheckpointError:
            raise CheckpointError(
                f"{damaged}, and so is {previous.name} beside it. Delete both to start over."
            ) from None
        if warn:
            warnings.warn(f"{damaged}; resuming from {previous.name}, saved one checkpoint earlier.", stacklevel=2)
        return state


def random_states(model: torch.nn.Module) -> dict[str, Any]:
    """Every random state a run draws from: Python, NumPy, torch (CPU and CUDA) and the
    modules that own a generator (augmentation layers with a seed)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    modules = {
        name: module.get_rng_state()
        for name, module in model.named_modules()
        if hasattr(module, "get_rng_state") and module.get_rng_state() is not None
    }
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "modules": modules,
    }


def restore_random_states(model: torch.nn.Module, states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    modules = dict(model.named_modules())
    for name, state in states["modules"].items():
        if name in modules:
            modules[name].set_rng_state(state)
