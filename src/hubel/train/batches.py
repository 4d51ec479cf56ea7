"""Data in for the engine: in-memory arrays become slices of a shuffled index (no per-example
Python), split over the processes that share each batch; any iterable of (x, y) batches works too."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hubel.data.shards import ShardBatch, shard
from hubel.errors import ConfigError, DataError
from hubel.layers.base import tensor_view
from hubel.train.distributed import World

__all__ = ["ArrayBatches", "Batches", "IterableBatches", "as_tensor", "batches_of"]


def as_tensor(values: Any, name: str) -> Tensor:
    if isinstance(values, Tensor):
        return values
    array = np.asarray(values)
    if array.dtype == object:
        raise DataError(f"{name} must be a numeric array; it holds Python objects (ragged sequences?). Pad them first.")
    if array.dtype == np.float64:
        array = array.astype(np.float32)  # Keras's default float, and half the memory traffic
    return tensor_view(array)


class Batches:
    """One epoch at a time of (x, y, share) batches; `steps` is the number of batches per epoch.
    share is this process's fraction of the global batch (1.0 in a single process; see
    hubel.data.shards)."""

    steps: int | None

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Any, Any, float]]:
        raise NotImplementedError


class ArrayBatches(Batches):
    """In-memory arrays, fed as slices of a shuffled index: no per-example Python. x may be a
    list of arrays, one per input of a multi-input model. On several processes, each takes its
    part of every global batch of batch_size × processes examples."""

    def __init__(
        self, x: Tensor | list[Tensor], y: Tensor | None, batch_size: int, shuffle: bool, seed: int, world: World
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self.world = world
        self.count = len(x[0]) if isinstance(x, list) else len(x)
        self.steps = math.ceil(self.count / (batch_size * world.size))

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Any, Tensor | None, float]]:
        order = None
        if self.shuffle:  # the order follows from (seed, epoch) alone, so a resumed run replays it
            order = torch.randperm(self.count, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        size = self.batch_size * self.world.size  # the global batch
        for step in range(skip, self.steps):
            part, share = slice(step * size, min((step + 1) * size, self.count)), 1.0
            if self.world.size > 1:
                mine, share = shard(part.stop - part.start, self.world.rank, self.world.size)
                part = slice(part.start + mine.start, part.start + mine.stop)
            index = part if order is None else order[part]  # contiguous slices when not shuffling
            x = [inputs[index] for inputs in self.x] if isinstance(self.x, list) else self.x[index]
            yield x, None if self.y is None else self.y[index], share


class IterableBatches(Batches):
    """Any iterable of (x, y) batches, such as an image-folder dataset. If it has
    set_epoch(epoch), it is told the epoch first, so its shuffle can be reproduced on resume.
    On several processes it must have shard(rank, size) (as ImageFolderDataset has), which gives
    each process its part of every batch."""

    def __init__(self, data: Iterable[Any], world: World) -> None:
        if world.size > 1:
            if not hasattr(data, "shard"):
                raise ConfigError(
                    f"a {type(data).__name__} cannot be split over {world.size} processes: pass arrays, an image "
                    f"folder dataset, or a dataset with a shard(rank, size) method."
                )
            data = data.shard(world.rank, world.size)  # type: ignore[attr-defined]
        self.data = data
        self.steps = len(data) if hasattr(data, "__len__") else None  # type: ignore[arg-type]

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[tuple[Any, Any, float]]:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        for step, batch in enumerate(self.data):
            if step < skip:
                continue
            if isinstance(batch, ShardBatch):
                yield batch.x, batch.y, batch.share
            elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
                yield batch[0], batch[1], 1.0
            else:
                yield batch, None, 1.0


def batches_of(
    x: Any, y: Any, batch_size: int, shuffle: bool, seed: int, inputs: int = 1, world: World | None = None
) -> Batches:
    """Batches of x (and y); `inputs` > 1: x is a list of arrays, one per input of the model;
    `world`: the processes that share each batch (one, when None)."""
    world = world or World()
    if inputs > 1:
        if not isinstance(x, (list, tuple)) or len(x) != inputs:
            raise DataError(f"the model has {inputs} inputs: pass x as a list of {inputs} arrays, one per input.")
        inputs = [as_tensor(part, f"x[{index}]") for index, part in enumerate(x)]
        targets = None if y is None else as_tensor(y, "y")
        if len({len(part) for part in inputs}) != 1:
            raise DataError(f"the model's inputs hold {[len(part) for part in inputs]} examples; give each the same.")
        if targets is not None and len(targets) != len(inputs[0]):
            raise DataError(f"x has {len(inputs[0])} examples but y has {len(targets)}. Give one label per example.")
        return ArrayBatches(inputs, targets, batch_size, shuffle, seed, world)
    if isinstance(x, (np.ndarray, Tensor)) or (isinstance(x, (list, tuple)) and y is not None):
        inputs = as_tensor(x, "x")
        targets = None if y is None else as_tensor(y, "y")
        if targets is not None and len(targets) != len(inputs):
            raise DataError(f"x has {len(inputs)} examples but y has {len(targets)}. Give one label per example.")
        if len(inputs) == 0:
            raise DataError("x holds no examples.")
        return ArrayBatches(inputs, targets, batch_size, shuffle, seed, world)
    if y is not None:
        raise ConfigError("y is given, but x is not an array: a dataset yields (x, y) batches itself; drop y.")
    if not hasattr(x, "__iter__"):
        raise DataError(f"expected x to be an array or an iterable of (x, y) batches. Received: {type(x).__name__}")
    return IterableBatches(x, world)
