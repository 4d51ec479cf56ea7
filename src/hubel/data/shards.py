"""Shards: which examples of a batch each process of a distributed run takes.

A run on N processes walks one global order of the data, in global batches of N × B examples
(B per process). Process r takes the r-th contiguous part of each global batch, so the union of
the parts is the batch, and one epoch over all processes is exactly one epoch. Each part carries
its share of the batch, which weights its loss, so that averaging the processes' gradients (what
DistributedDataParallel does) gives the gradient of the global batch's mean loss — also for a
last batch that does not divide evenly.

    >>> shard(10, rank=1, size=4)
    (slice(2, 5, None), 0.3)
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["ShardBatch", "shard"]


class ShardBatch(NamedTuple):
    """One process's part of a global batch: its examples and their share of the batch (0 for a
    stand-in: a process left without examples still runs the step, on an example that counts
    for nothing)."""

    x: Any
    y: Any
    share: float


def shard(count: int, rank: int, size: int) -> tuple[slice, float]:
    """Process `rank`'s part of a batch of `count` examples, as (slice, share): contiguous parts
    in rank order whose sizes differ by one at most. When there are fewer examples than
    processes, a process without one gets the first example as a stand-in, with share 0."""
    if count >= size:
        start, stop = rank * count // size, (rank + 1) * count // size
        return slice(start, stop), (stop - start) / count
    if rank < count:
        return slice(rank, rank + 1), 1 / count
    return slice(0, 1), 0.0
