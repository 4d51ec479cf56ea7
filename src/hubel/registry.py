"""Named things (layers, activations, initializers, ...) in one kind of registry.

Example:
    >>> colors = Registry("color", "hubel.list_colors()")
    >>> @colors.register("red")
    ... def red() -> str:
    ...     return "#f00"
    >>> colors.get("red")()
    '#f00'
    >>> colors.get("rde")
    Traceback (most recent call last):
    ...
    hubel.errors.UnknownNameError: Unknown color 'rde'. Did you mean 'red'? See hubel.list_colors().
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from hubel.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map whose misses suggest close names and the listing call."""

    def __init__(self, kind: str, listing: str) -> None:
        self.kind = kind
        self.listing = listing
        self._entries: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: register an object under `name` (default: its __name__)."""

        def add(obj: T) -> T:
            key = name or obj.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise UnknownNameError(f"Expected a {self.kind} name (a string). Received: {name!r}. See {self.listing}.")
        try:
            return self._entries[name]
        except KeyError:
            pass
        folded = {key.lower(): key for key in self._entries}
        close = difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(folded[c]) for c in close)}?" if close else ""
        raise UnknownNameError(f"Unknown {self.kind} {name!r}.{hint} See {self.listing}.") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
