"""Optimizers by Keras name or as Keras-style objects, with Keras's defaults, on torch.optim.

    model.compile(optimizer="adam")                       # lr 1e-3, epsilon 1e-7
    model.compile(optimizer=hubel.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    model.optimizer.learning_rate = 1e-4                   # readable and settable while training

learning_rate may also be a schedule (a callable step -> rate, see schedules.py), applied
before every step. The updates are Keras's own rules (update_rules.py): epsilon where Keras puts
it, momentum as Keras accumulates it, weight_decay decoupled (applied to the weights before the
update, every optimizer), and Keras's gradient clipping (clipnorm per weight, global_clipnorm,
clipvalue). Every optimizer also keeps Keras's moving average of the weights when asked:

    hubel.optimizers.SGD(0.1, momentum=0.9, use_ema=True, ema_momentum=0.99)

after each update, average = ema_momentum * average + (1 - ema_momentum) * weight (the weight
itself after the first update); fit writes the averages into the weights after its last epoch,
and every `ema_overwrite_frequency` steps when that is set, as Keras's fit does.

One thing Keras's optimizers lack, hubel's have: a rate multiplier for some weights, named by
a pattern over the model's weight names (`fnmatch`, against the full name or any dotted tail):

    hubel.optimizers.SGD(0.1, momentum=0.9, learning_rate_multipliers={"beta": 64.0})

Batch norm's offsets (`batch_normalization_3.beta`) then take 64× the gradient step, as in the
fast CIFAR-10 trainers. The multiplier scales the step, not the weight decay: every weight
decays at the base rate.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from hubel.errors import ConfigError
from hubel.registry import Registry
from hubel.train.update_rules import KerasAdam, KerasRMSprop, KerasSGD

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "get_optimizer",
    "list_optimizers",
    "weight_matches",
    "weight_names",
]

Schedule = Callable[[int], float]
_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")  # Keras's, accepted by every optimizer
_MOVING_AVERAGE = ("use_ema", "ema_momentum", "ema_overwrite_frequency")  # so are these
OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", "hubel.train.list_optimizers()")


def weight_matches(name: str, pattern: str) -> bool:
    """Whether a weight's name (`batch_normalization_3.beta`), or a dotted tail of it (`beta`),
    matches an fnmatch pattern: how learning_rate_multipliers and FreezeWeights name weights.

    Example:
        >>> weight_matches("batch_normalization_3.beta", "beta"), weight_matches("dense.kernel", "conv*")
        (True, False)
    """
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[start:]), pattern) for start in range(len(parts)))


def weight_names(names: list[str], shown: int = 6) -> str:
    """The first few weight names, for a message about a pattern that matched none of them."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


class Optimizer:
    """A Keras-style optimizer: holds its settings until built on a model's parameters."""

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        clipping: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        clipping = dict(clipping or {})
        self.learning_rate_multipliers = _multipliers(
            type(self).__name__, clipping.pop("learning_rate_multipliers", None)
        )
        moving_average = {key: clipping.pop(key) for key in _MOVING_AVERAGE if key in clipping}
        unexpected = [key for key in clipping if key not in _CLIPPING]
        if unexpected:
            known = [*_CLIPPING, *_MOVING_AVERAGE, "learning_rate", "learning_rate_multipliers"]
            close = difflib.get_close_matches(unexpected[0], known, n=1)
            raise ConfigError(
                f"{type(self).__name__}: unexpected argument `{unexpected[0]}`"
                + (f" (did you mean `{close[0]}`?)" if close else "")
                + f". Received: {unexpected[0]}={clipping[unexpected[0]]!r}"
            )
        given = {key: value for key, value in clipping.items() if value is not None}
        if len(given) > 1:
            raise ConfigError(
                f"{type(self).__name__}: only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set "
                f"(as in Keras). Received: {', '.join(f'{k}={v!r}' for k, v in given.items())}"
            )
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(
                    f"{type(self).__name__}: expected `{key}` to be a positive number. Received: {value!r}"
                )
        self.clipping = {key: float(value) for key, value in given.items()}
        self.use_ema, self.ema_momentum, self.ema_overwrite_frequency = _moving_average_settings(
            type(self).__name__, **moving_average
        )
        self._averages: list[torch.Tensor] | None = None  # built at the first update
        weight_decay = settings.get("weight_decay")
        if weight_decay is not None and (
            isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0
        ):
            raise ConfigError(
                f"{type(self).__name__}: expected `weight_decay` to be a number >= 0 or None. "
                f"Received: {weight_decay!r}"
            )
        if "weight_decay" in settings:
            settings["weight_decay"] = float(weight_decay or 0.0)
        if not callable(learning_rate) and (
            not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or learning_rate <= 0
        ):
            raise ConfigError(
                f"{type(self).__name__}: expected `learning_rate` to be a positive number or a schedule. "
                f"Received: learning_rate={learning_rate!r}"
            )
        self.schedule: Schedule | None = learning_rate if callable(learning_rate) else None
        self._initial_rate = float(learning_rate(0) if callable(learning_rate) else learning_rate)
        self.settings = settings
        self.torch: torch.optim.Optimizer | None = None
        self.iterations = 0

    def make(self, groups: list[dict[str, Any]], rate: float) -> torch.optim.Optimizer:
        raise NotImplementedError

    def build(self, parameters: Iterable[nn.Parameter] | Iterable[tuple[str, nn.Parameter]]) -> Optimizer:
        """Create the torch optimizer over `parameters`, or over `model.named_parameters()`, which
        learning_rate_multipliers need (once; later calls keep its state)."""
        if self.torch is None:
            named = [item if isinstance(item, tuple) else (None, item) for item in parameters]
            trainable = [(name, p) for name, p in named if p.requires_grad]
            if not trainable:
                raise ConfigError("the model has no trainable parameters (are all its layers frozen?).")
            self.torch = self.make(self._groups(trainable), self._initial_rate)
        return self

    def _groups(self, trainable: list[tuple[str | None, nn.Parameter]]) -> list[dict[str, Any]]:
        """One parameter group per multiplier (1 first), each weight's multiplier from the first
        pattern that matches its name or a dotted tail of it."""
        if not self.learning_rate_multipliers:
            return [{"params": [p for _, p in trainable]}]
        if any(name is None for name, _ in trainable):
            raise ConfigError(
                f"{type(self).__name__}: learning_rate_multipliers name weights, so build the optimizer on "
                "model.named_parameters() (fit does)."
            )
        groups: dict[float, list[nn.Parameter]] = {1.0: []}
        used = set()
        for name, parameter in trainable:
            pattern = next((key for key in self.learning_rate_multipliers if weight_matches(str(name), key)), None)
            used.add(pattern)
            groups.setdefault(self.learning_rate_multipliers.get(pattern, 1.0), []).append(parameter)
        unused = [key for key in self.learning_rate_multipliers if key not in used]
        if unused:
            names = weight_names([str(name) for name, _ in trainable])
            raise ConfigError(
                f"{type(self).__name__}: learning_rate_multipliers pattern {unused[0]!r} matches none of the "
                f"model's trainable weights ({names}). Use a weight name or a pattern such as 'beta' or 'dense*'."
            )
        return [{"params": params, "lr_multiplier": multiple} for multiple, params in groups.items() if params]

    @property
    def learning_rate(self) -> float:
        if self.torch is None:
            return self._initial_rate
        return float(self.torch.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"expected a positive learning rate. Received: {value!r}")
        self.schedule = None  # an explicit rate replaces a schedule
        self._initial_rate = float(value)
        if self.torch is not None:
            for group in self.torch.param_groups:
                group["lr"] = float(value)

    def _built(self) -> torch.optim.Optimizer:
        if self.torch is None:
            raise ConfigError(
                f"{type(self).__name__} is not built yet: it is built on the model's parameters by fit()."
            )
        return self.torch

    def step(self, scaler: Any = None) -> None:
        """Apply the schedule (if any) for this step, then update the parameters (through a
        mixed-precision gradient scaler when given)."""
        optimizer = self._built()
        if self.schedule is not None:
            rate = float(self.schedule(self.iterations))
            for group in optimizer.param_groups:
                group["lr"] = rate
        if self.clipping and scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients
        if self.clipping:
            self._clip(optimizer)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        if self.use_ema:
            self._update_averages(optimizer)
            if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
                self.finalize_variable_values()
        self.iterations += 1

    def _update_averages(self, optimizer: torch.optim.Optimizer) -> None:
        weights = [p.detach() for group in optimizer.param_groups for p in group["params"]]
        if self._averages is None or self.iterations == 0:  # Keras: the first average is the weight
            self._averages = [weight.clone() for weight in weights]
        else:  # average + (1 - m) * (weight - average) = m * average + (1 - m) * weight
            torch._foreach_lerp_(self._averages, weights, 1.0 - self.ema_momentum)

    def finalize_variable_values(self) -> None:
        """With use_ema, write the moving averages into the weights (fit does it after its last
        epoch, as Keras's fit does); without, nothing."""
        if not self.use_ema or self._averages is None or self.torch is None:
            return
        weights = [p.detach() for group in self.torch.param_groups for p in group["params"]]
        torch._foreach_copy_(weights, self._averages)

    def _clip(self, optimizer: torch.optim.Optimizer) -> None:
        gradients = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not gradients:
            return
        if "clipvalue" in self.clipping:
            torch._foreach_clamp_min_(gradients, -self.clipping["clipvalue"])
            torch._foreach_clamp_max_(gradients, self.clipping["clipvalue"])
            return
        norms = torch._foreach_norm(gradients)
        if "global_clipnorm" in self.clipping:  # all gradients together, by their joint norm
            limit, total = self.clipping["global_clipnorm"], float(torch.linalg.vector_norm(torch.stack(norms)))
            if total > limit:
                torch._foreach_mul_(gradients, limit / total)
            return
        limit = self.clipping["clipnorm"]  # Keras's clipnorm: each gradient by its own norm
        for gradient, norm in zip(gradients, norms):
            if norm > limit:
                gradient.mul_(limit / norm)

    def zero_grad(self) -> None:
        self._built().zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        averages = None if self._averages is None else [average.clone() for average in self._averages]
        return {"torch": None if self.torch is None else self.torch.state_dict(), "iterations": self.iterations,
                "averages": averages}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["torch"] is not None:
            self._built().load_state_dict(state["torch"])
        self.iterations = int(state["iterations"])
        averages = state.get("averages")
        if averages is None or self.torch is None:
            self._averages = None
            return
        weights = [p for group in self.torch.param_groups for p in group["params"]]
        self._averages = [average.to(weight.device, weight.dtype) for average, weight in zip(averages, weights)]

    def __repr__(self) -> str:
        moving_average = (
            {
                "use_ema": True,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
            }
            if self.use_ema
            else {}
        )
        multipliers = (
            {"learning_rate_multipliers": self.learning_rate_multipliers} if self.learning_rate_multipliers else {}
        )
        settings = ", ".join(
            f"{key}={value!r}"
            for key, value in {**self.settings, **self.clipping, **moving_average, **multipliers}.items()
        )
        return f"{type(self).__name__}(learning_rate={self.learning_rate:g}{', ' + settings if settings else ''})"


def _multipliers(name: str, multipliers: Any) -> dict[str, float]:
    """learning_rate_multipliers, checked: weight-name patterns to positive numbers."""
    if multipliers is None:
        return {}
    if not isinstance(multipliers, dict) or not all(
        isinstance(key, str) and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        for key, value in multipliers.items()
    ):
        raise ConfigError(
            f"{name}: expected `learning_rate_multipliers` to map weight-name patterns to positive numbers, "
            f"such as {{'beta': 64.0}}. Received: {multipliers!r}"
        )
    return {key: float(value) for key, value in multipliers.items()}


def _moving_average_settings(
    name: str, use_ema: bool = False, ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None
) -> tuple[bool, float, int | None]:
    """Keras's moving-average arguments, checked as Keras checks them."""
    if not isinstance(use_ema, bool):
        raise ConfigError(f"{name}: expected `use_ema` to be True or False. Received: use_ema={use_ema!r}")
    if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, (int, float)) or not 0 <= ema_momentum <= 1:
        raise ConfigError(
            f"{name}: `ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum!r}"
        )
    if ema_overwrite_frequency is not None and (
        isinstance(ema_overwrite_frequency, bool)
        or not isinstance(ema_overwrite_frequency, int)
        or ema_overwrite_frequency < 1
    ):
        raise ConfigError(
            f"{name}: `ema_overwrite_frequency` must be an integer >= 1 or None. "
            f"Received: ema_overwrite_frequency={ema_overwrite_frequency!r}"
        )
    return use_ema, float(ema_momentum), ema_overwrite_frequency


class _Wrapped(Optimizer):
    """Adopts a torch optimizer the user built themselves."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        super().__init__(float(optimizer.param_groups[0]["lr"]))
        self.torch = optimizer


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Keras SGD: learning_rate 0.01, momentum 0, nesterov False, weight_decay None (decoupled)."""

    def __init__(
        self,
        learning_rate: float | Schedule = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float | None = None,
        **clipping: Any,
    ) -> None:
        super().__init__(learning_rate, clipping, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def make(self, groups: list[dict[str, Any]], rate: float) -> torch.optim.Optimizer:
        return KerasSGD(groups, lr=rate, **self.settings)


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Keras Adam: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7."""

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: float | None = None,
        **clipping: Any,
    ) -> None:
        super().__init__(
            learning_rate, clipping, betas=(beta_1, beta_2), eps=epsilon, amsgrad=amsgrad, weight_decay=weight_decay
        )

    def make(self, groups: list[dict[str, Any]], rate: float) -> torch.optim.Optimizer:
        return KerasAdam(groups, lr=rate, **self.settings)


@OPTIMIZERS.register("adamw")
class AdamW(Optimizer):
    """Keras AdamW: learning_rate 1e-3, weight_decay 0.004, epsilon 1e-7."""

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **clipping: Any,
    ) -> None:
        super().__init__(
            learning_rate, clipping, betas=(beta_1, beta_2), eps=epsilon, weight_decay=weight_decay, amsgrad=amsgrad
        )

    def make(self, groups: list[dict[str, Any]], rate: float) -> torch.optim.Optimizer:
        return KerasAdam(groups, lr=rate, **self.settings)


@OPTIMIZERS.register("rmsprop")
class RMSprop(Optimizer):
    """Keras RMSprop: learning_rate 1e-3, rho 0.9, momentum 0, epsilon 1e-7, centered False."""

    def __init__(
        self,
        learning_rate: float | Schedule = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: float | None = None,
        **clipping: Any,
    ) -> None:
        super().__init__(
            learning_rate,
            clipping,
            alpha=rho,
            momentum=momentum,
            eps=epsilon,
            centered=centered,
            weight_decay=weight_decay,
        )

    def make(self, groups: list[dict[str, Any]], rate: float) -> torch.optim.Optimizer:
        return KerasRMSprop(groups, lr=rate, **self.settings)


def get_optimizer(optimizer: str | Optimizer | torch.optim.Optimizer) -> Optimizer:
    """An Optimizer from a Keras name, a hubel Optimizer, or a torch optimizer."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        return _Wrapped(optimizer)
    if isinstance(optimizer, str):
        return OPTIMIZERS.get(optimizer.lower())()
    raise ConfigError(f"expected `optimizer` to be a name such as 'adam' or an optimizer. Received: {optimizer!r}")


def list_optimizers() -> list[str]:
    """Every optimizer name compile() accepts."""
    return OPTIMIZERS.names()
