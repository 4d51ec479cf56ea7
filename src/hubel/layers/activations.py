"""Keras activations by name. Channel-wise ones (softmax) act on the channel axis, which is
Keras's last axis and hubel's internal axis 1."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from hubel.registry import Registry

__all__ = ["ACTIVATIONS", "get_activation", "list_activations"]

ActivationFn = Callable[[Tensor], Tensor]

ACTIVATIONS: Registry[ActivationFn] = Registry("activation", "hubel.layers.list_activations()")


def _channel_axis(x: Tensor) -> int:
    return 1 if x.dim() > 1 else 0


@ACTIVATIONS.register("linear")
def linear(x: Tensor) -> Tensor:
    return x


@ACTIVATIONS.register("relu")
def relu(x: Tensor) -> Tensor:
    return F.relu(x)


@ACTIVATIONS.register("relu6")
def relu6(x: Tensor) -> Tensor:
    return F.relu6(x)


@ACTIVATIONS.register("leaky_relu")
def leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)  # Keras 3 default negative_slope


@ACTIVATIONS.register("elu")
def elu(x: Tensor) -> Tensor:
    return F.elu(x)


@ACTIVATIONS.register("selu")
def selu(x: Tensor) -> Tensor:
    return F.selu(x)


@ACTIVATIONS.register("gelu")
def gelu(x: Tensor) -> Tensor:
    return F.gelu(x)  # exact erf form, Keras's default (approximate=False)


@ACTIVATIONS.register("swish")
def swish(x: Tensor) -> Tensor:
    return F.silu(x)


ACTIVATIONS.register("silu")(swish)


@ACTIVATIONS.register("hard_sigmoid")
def hard_sigmoid(x: Tensor) -> Tensor:
    return F.hardsigmoid(x)  # relu6(x + 3) / 6, Keras 3's definition


@ACTIVATIONS.register("hard_swish")
def hard_swish(x: Tensor) -> Tensor:
    return F.hardswish(x)


@ACTIVATIONS.register("mish")
def mish(x: Tensor) -> Tensor:
    return F.mish(x)


@ACTIVATIONS.register("softplus")
def softplus(x: Tensor) -> Tensor:
    return F.softplus(x)


@ACTIVATIONS.register("softsign")
def softsign(x: Tensor) -> Tensor:
    return F.softsign(x)


def _with_logits(probabilities: Tensor, logits: Tensor) -> Tensor:
    """Keep the logits on a probability output, so a cross-entropy loss can use a stable
    log-softmax/log-sigmoid instead of the log of a probability (Keras does the same)."""
    probabilities._hubel_logits = logits  # type: ignore[attr-defined]
    return probabilities


@ACTIVATIONS.register("sigmoid")
def sigmoid(x: Tensor) -> Tensor:
    return _with_logits(torch.sigmoid(x), x)


@ACTIVATIONS.register("tanh")
def tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


@ACTIVATIONS.register("exponential")
def exponential(x: Tensor) -> Tensor:
    return torch.exp(x)


@ACTIVATIONS.register("softmax")
def softmax(x: Tensor) -> Tensor:
    return _with_logits(F.softmax(x, dim=_channel_axis(x)), x)


@ACTIVATIONS.register("log_softmax")
def log_softmax(x: Tensor) -> Tensor:
    return F.log_softmax(x, dim=_channel_axis(x))


_IN_PLACE: dict[str, ActivationFn] = {
    "relu": torch.relu_,
    "relu6": lambda x: F.hardtanh_(x, 0.0, 6.0),
}


def get_activation(name: str | None, in_place: bool = False) -> tuple[str, ActivationFn]:
    """Resolve an activation argument: None means 'linear'. Returns (name, function).

    `in_place=True` is for a layer whose input to the activation is a tensor of its own that
    nothing else holds (a convolution's or a dense layer's output): relu and relu6 then overwrite
    it instead of allocating another tensor of the same size (the CIFAR-10 tutorial network's
    forward at batch 256 went from 0.88x to 0.91x of ONNX Runtime's speed on two CPU cores).
    Autograd computes their gradients from the output, so training is unchanged.

    Example:
        >>> get_activation(None)[0], get_activation("ReLU")[0]
        ('linear', 'relu')
    """
    key = "linear" if name is None else name
    if isinstance(key, str):
        key = key.lower()
    function = ACTIVATIONS.get(key)
    return key, _IN_PLACE.get(key, function) if in_place else function


def list_activations() -> list[str]:
    """Every activation name a layer's `activation=` accepts."""
    return ACTIVATIONS.names()
