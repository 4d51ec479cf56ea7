"""Argument checks shared by the layers; each error is Keras-style: expected, then Received."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from hubel.errors import ConfigError

__all__ = [
    "axis_position",
    "channels_first_axis",
    "choice",
    "fraction",
    "integer_tuple",
    "keras_axis",
    "number",
    "positive_int",
    "shape_tuple",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(owner: str, name: str, value: Any) -> int:
    """`value` as an int >= 1, else a ConfigError naming the argument."""
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{owner}: expected `{name}` to be a positive integer. Received: {name}={value!r}")
    return int(value)


def integer_tuple(owner: str, name: str, value: Any, rank: int, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of `rank` ints, each >= minimum, as a tuple of length `rank`.

    Example:
        >>> integer_tuple("Conv2D", "kernel_size", 3, 2)
        (3, 3)
    """
    items = (value,) * rank if _is_int(value) else value
    if (
        not isinstance(items, Sequence)
        or isinstance(items, str)
        or len(items) != rank
        or not all(_is_int(item) and item >= minimum for item in items)
    ):
        what = "an integer" if rank == 1 else f"an integer or a tuple of {rank} integers"
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ConfigError(f"{owner}: expected `{name}` to be {what}, all {bound}. Received: {name}={value!r}")
    return tuple(int(item) for item in items)


def choice(owner: str, name: str, value: Any, options: Sequence[str]) -> str:
    """`value` if it is one of `options` (case-insensitive), lower-cased."""
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    listed = ", ".join(repr(option) for option in options)
    raise ConfigError(f"{owner}: expected `{name}` to be one of {listed}. Received: {name}={value!r}")


def number(owner: str, name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """A real number within [low, high] (either bound optional)."""
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or value != value  # NaN
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        bounds = ""
        if low is not None and high is not None:
            bounds = f" in [{low}, {high}]"
        elif low is not None:
            bounds = f" >= {low}"
        elif high is not None:
            bounds = f" <= {high}"
        raise ConfigError(f"{owner}: expected `{name}` to be a number{bounds}. Received: {name}={value!r}")
    return float(value)


def fraction(owner: str, name: str, value: Any) -> float:
    """A number in [0, 1): a dropout rate."""
    rate = number(owner, name, value, 0.0, 1.0)
    if rate >= 1.0:
        raise ConfigError(f"{owner}: expected `{name}` in [0, 1) (1 would drop everything). Received: {name}={value!r}")
    return rate


def shape_tuple(owner: str, name: str, value: Any) -> tuple[int, ...]:
    """A per-example shape such as (28, 28, 1): positive ints, batch excluded."""
    items = (value,) if _is_int(value) else value
    if (
        not isinstance(items, Sequence)
        or isinstance(items, str)
        or len(items) == 0
        or not all(_is_int(item) and item >= 1 for item in items)
    ):
        raise ConfigError(
            f"{owner}: expected `{name}` to be a tuple of positive integers without the batch axis, "
            f"such as (28, 28, 1). Received: {name}={value!r}"
        )
    return tuple(int(item) for item in items)


def keras_axis(owner: str, value: Any) -> int:
    """An axis in Keras's layout, counted with the batch axis first: any non-zero integer (-1,
    the channels axis, is the usual one)."""
    if not _is_int(value) or value == 0:
        raise ConfigError(
            f"{owner}: expected `axis` to be a non-zero integer (0 is the batch axis). Received: axis={value!r}"
        )
    return int(value)


def axis_position(axis: int, rank: int) -> int | None:
    """Keras's `axis` as a position 1..rank among an example's axes (batch excluded), None outside."""
    position = axis + rank + 1 if axis < 0 else axis
    return position if 1 <= position <= rank else None


def channels_first_axis(position: int, rank: int) -> int:
    """Where an example's axis `position` (1..rank, Keras's layout) sits in hubel's channels-first
    tensors, batch axis 0: the channels (the last) move to 1, the others up by one."""
    return 1 if position == rank else position + 1
