"""Embedding: integer token ids to dense vectors, the first layer of a text model."""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from hubel.errors import DataError
from hubel.layers.args import positive_int
from hubel.layers.base import Layer, Shape, register_layer
from hubel.layers.initializers import INITIALIZERS

__all__ = ["Embedding"]


@register_layer
class Embedding(Layer):
    """Look up an `output_dim` vector for each token id in [0, input_dim).

    input_length (Keras 2) declares the sequence length, as input_shape=(input_length,) would.

    Example:
        >>> Embedding(10000, 32, input_length=500).declared_input_shape
        (500,)
        >>> Embedding(10000, 32).compute_output_shape((500,))
        (500, 32)
    """

    accepts_integers: ClassVar[bool] = True

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: str = "uniform",
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (positive_int("Embedding", "input_length", input_length),)
        super().__init__(**kwargs)
        self.input_dim = positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = positive_int("Embedding", "output_dim", output_dim)
        INITIALIZERS.get(embeddings_initializer)
        self.embeddings_initializer = embeddings_initializer
        self.input_length = input_length

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.output_dim)

    def create_weights(self, input_shape: Shape) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)

    def forward(self, x: Tensor) -> Tensor:  # (N, L) int -> (N, output_dim, L)
        try:
            y = F.embedding(x.long(), self.embeddings)
        except IndexError:
            low, high = int(x.min()), int(x.max())
            raise DataError(
                f"{self.describe()}: token ids must lie in [0, {self.input_dim}) (input_dim={self.input_dim}); "
                f"the input holds ids from {low} to {high}. Raise input_dim or map rare words to one id."
            ) from None
        return y.movedim(-1, 1) if y.dim() > 2 else y

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": self.embeddings_initializer,
        }
        if self.input_length is not None:
            config["input_length"] = self.input_length
        return config
