"""The exception hierarchy. The CLI alone turns a HubelError into a one-line message."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DistributedError",
    "HubelError",
    "ModelFileError",
    "ShapeError",
    "UnknownNameError",
]


class HubelError(Exception):
    """Root of every error hubel raises on purpose; the message says what to do."""


class ConfigError(HubelError, ValueError):
    """An argument or a spec has a value hubel cannot use."""


class ShapeError(HubelError, ValueError):
    """A layer cannot accept the shape it is given."""


class DataError(HubelError, ValueError):
    """Data is missing, unreadable or inconsistent."""


class DistributedError(HubelError, RuntimeError):
    """The processes of a distributed run could not meet, or one of them died."""


class ModelFileError(HubelError, ValueError):
    """A model file is truncated, foreign or from a newer hubel."""


class UnknownNameError(HubelError, KeyError):
    """A name (layer, activation, initializer, ...) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
