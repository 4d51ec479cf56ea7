"""Symbolic tensors and the nodes that connect them: what the functional API is made of.

    x = L.Input(shape=(28, 28, 1))        # a SymbolicTensor with no producer
    y = L.Conv2D(8, 3)(x)                 # the layer is built for x's shape; y records the call (a Node)
    model = hubel.Model(x, y)             # the graph between them

A symbolic tensor holds no data: a per-example shape (Keras layout, batch excluded), a name,
and the node that produced it. A node is one call of a layer: the layer, the symbolic
tensors it took and gave, and the `training=` it was called with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Node", "SymbolicTensor", "flatten_symbolic", "is_symbolic"]

Shape = tuple[int, ...]


class SymbolicTensor:
    """A placeholder for a batch of tensors of one per-example shape, as Keras's KerasTensor.

    `shape` includes the batch axis as None, as Keras prints it; `example_shape` leaves it out.

    Example:
        >>> SymbolicTensor((5, 5, 1024), name="features").shape
        (None, 5, 5, 1024)
    """

    def __init__(
        self, example_shape: Shape, name: str, producer: Node | None = None, index: int = 0, dtype: str | None = None
    ) -> None:
        self.example_shape: Shape = tuple(int(size) for size in example_shape)
        self.name = name
        self.producer = producer  # None for an Input
        self.index = index  # which output of the producer this is
        self.dtype = dtype

    @property
    def shape(self) -> tuple[int | None, ...]:
        return (None, *self.example_shape)

    @property
    def layer_name(self) -> str:
        """The layer that produced this tensor (the Input's own name for an input)."""
        return self.producer.layer.name if self.producer is not None else self.name

    def __repr__(self) -> str:
        return f"<SymbolicTensor shape={self.shape} name={self.name!r}>"


@dataclass(eq=False)
class Node:
    """One call of a layer on symbolic tensors."""

    layer: Any  # a hubel Layer (or a model used as a layer)
    inputs: list[SymbolicTensor]
    as_list: bool  # the layer was called on a list (merge layers), not on one tensor
    training: bool | None = None
    outputs: list[SymbolicTensor] = field(default_factory=list)


def is_symbolic(value: Any) -> bool:
    """True for a SymbolicTensor or a non-empty list/tuple holding one."""
    if isinstance(value, SymbolicTensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(item, SymbolicTensor) for item in value)


def flatten_symbolic(value: Any) -> Iterator[SymbolicTensor]:
    """The symbolic tensors in a tensor or a (nested) list of them."""
    if isinstance(value, SymbolicTensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from flatten_symbolic(item)
