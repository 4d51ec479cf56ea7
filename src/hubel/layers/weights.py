"""A layer's weights as Keras lists them (`layer.weights`, `trainable_weights`,
`non_trainable_weights`): each a Weight with Keras's name, layout and shape, over the torch
tensor the layer trains.

    len(model.trainable_weights)          # 2 for the tutorial's head on a frozen base, as in Keras
    model.layers[0].weights[0].shape      # (3, 3, 1, 32): Keras's kernel layout
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from hubel.errors import ShapeError

if TYPE_CHECKING:
    from hubel.layers.base import Layer

__all__ = ["Weight", "name_scope"]

_SCOPES: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("hubel_name_scopes", default=())


@contextlib.contextmanager
def name_scope(name: str) -> Iterator[str]:
    """Keras's name scopes, which make its weights' paths: a layer creates its weights inside its
    own, and a Sequential builds its layers inside its own ("sequential/conv2d/kernel"; a layer
    first called on a functional model's inputs: "conv2d/kernel"). Yields the path so far."""
    token = _SCOPES.set((*_SCOPES.get(), name))
    try:
        yield "/".join(_SCOPES.get())
    finally:
        _SCOPES.reset(token)


class Weight:
    """One weight, as a Keras variable: `path` ("sequential/conv2d/kernel"), `shape` and `numpy()` in
    Keras's layout, `trainable`, and `assign(array)`; `value` is the torch tensor itself."""

    def __init__(self, layer: Layer, name: str, value: Tensor) -> None:
        self.layer, self.name, self.value = layer, name, value

    @property
    def path(self) -> str:
        """Where Keras would put it: the scopes its layer was built in, the layer, the weight."""
        return f"{self.layer._weights_path or self.layer.name}/{self.name}"

    @property
    def trainable(self) -> bool:
        """A parameter that trains (not frozen); state such as BN's moving statistics never does."""
        return isinstance(self.value, nn.Parameter) and self.value.requires_grad

    def numpy(self) -> np.ndarray:
        return self.layer.keras_weight(self.name, self.value)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.numpy().shape)

    @property
    def dtype(self) -> str:
        return str(self.value.dtype).removeprefix("torch.")

    def assign(self, value: Any) -> None:
        """Replace the weight with an array in Keras's layout."""
        if tuple(np.shape(value)) != self.shape:
            raise ShapeError(f"{self.path}: expected an array of shape {self.shape} (Keras's layout). "
                             f"Received: {tuple(np.shape(value))}")  # fmt: skip
        internal = self.layer.internal_weight(self.name, torch.as_tensor(np.asarray(value)))
        with torch.no_grad():
            self.value.copy_(internal.to(self.value.dtype).reshape(self.value.shape))

    def __repr__(self) -> str:
        return f"<Weight path={self.path!r} shape={self.shape} trainable={self.trainable}>"


def own_weights(layer: Layer) -> list[Weight]:
    """A layer's own weights, trainable ones first, as Keras orders a layer's variables."""
    weights = [Weight(layer, name, tensor) for name, tensor in layer._own_weights()]
    return [weight for weight in weights if weight.trainable] + [weight for weight in weights if not weight.trainable]
