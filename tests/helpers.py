"""check_layer: the one test every layer passes (shapes, parameter count, gradients, config)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import hubel
from hubel import layers as L
from hubel.layers.base import Layer, internal_to_keras, keras_to_internal

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the clone


def random_input(layer: Layer, input_shape: Any, batch: int = 2) -> Any:
    """A Keras-layout batch: random floats, or token ids for layers that take integers (a list
    of batches for a list of shapes, as merge layers take)."""
    if isinstance(input_shape, list):
        return [random_input(layer, shape, batch) for shape in input_shape]
    if layer.accepts_integers:
        return torch.randint(0, getattr(layer, "input_dim", 10), (batch, *input_shape))
    return torch.randn(batch, *input_shape)


def to_internal(x: Any) -> Any:
    return [keras_to_internal(part) for part in x] if isinstance(x, list) else keras_to_internal(x)


def check_layer(
    layer: Layer,
    input_shape: Any,
    expected_output_shape: tuple[int, ...] | None = None,
    expected_params: int | None = None,
    expected_trainable: int | None = None,
) -> torch.Tensor:
    """Build `layer` for `input_shape` and check it against the real forward pass and torch's own
    bookkeeping; returns the Keras-layout output for further checks."""
    layer.build(input_shape)
    output_shape = layer.compute_output_shape(input_shape)
    assert layer.output_shape == (None, *output_shape)
    several = isinstance(input_shape, list)
    assert layer.input_shape == ([(None, *s) for s in input_shape] if several else (None, *input_shape))
    if expected_output_shape is not None:
        assert output_shape == expected_output_shape

    x = random_input(layer, input_shape)
    layer.eval()
    y = internal_to_keras(layer(to_internal(x)))
    assert tuple(y.shape) == (2, *output_shape), "compute_output_shape disagrees with forward"

    torch_count = sum(p.numel() for p in layer.parameters()) + sum(b.numel() for b in layer.buffers())
    assert layer.count_params() == torch_count
    if expected_params is not None:
        assert layer.count_params() == expected_params
    if expected_trainable is not None:
        assert layer.count_trainable_params() == expected_trainable

    layer.train()
    trained = internal_to_keras(layer(to_internal(x)))
    if any(p.requires_grad for p in layer.parameters()):
        trained.float().square().sum().backward()
        for name, parameter in layer.named_parameters():
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), f"no gradient for {name}"

    config = layer.get_config()
    json.dumps(config)  # plain data, storable in model.json
    clone: Any = type(layer).from_config(config)
    assert clone.get_config() == config
    clone.build(input_shape)
    clone.load_state_dict(layer.state_dict())
    layer.eval()
    clone.eval()
    with torch.no_grad():
        expected = layer(to_internal(x))
        assert torch.equal(clone(to_internal(x)), expected)
    return y.detach()


def fashion_layers(first_kwargs: dict[str, Any]) -> list[Layer]:
    """The Fashion-MNIST tutorial network; first_kwargs go to its first layer (e.g. input_shape)."""
    return [
        L.Conv2D(64, (3, 3), activation="relu", **first_kwargs),
        L.MaxPooling2D(2, 2),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D(2, 2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax"),
    ]


def fashion_model() -> hubel.Sequential:
    return hubel.Sequential(fashion_layers({"input_shape": (28, 28, 1)}))


def png(pixels: np.ndarray) -> bytes:
    """The PNG file of (H, W) or (H, W, C) uint8 pixels."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
