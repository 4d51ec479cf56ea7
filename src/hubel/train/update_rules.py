"""Keras 3's update rules as torch optimizers, so that a model trained with hubel's SGD, Adam,
AdamW or RMSprop takes the same steps as in Keras.

torch's own optimizers differ from Keras's in ways users see: Adam adds epsilon after the bias
correction (Keras before), RMSprop adds epsilon outside the square root (Keras inside), SGD's
momentum buffer holds gradients where Keras's holds learning-rate-scaled steps (they part ways
as soon as a schedule changes the rate), and torch's SGD/Adam/RMSprop `weight_decay` is added
to the gradient where Keras decays the variable itself (decoupled), before the update. Each
rule below is Keras's `update_step`, line for line, on torch's multi-tensor (_foreach) kernels.

A parameter group may carry `lr_multiplier` (hubel's learning_rate_multipliers): its gradient
step is taken at lr × lr_multiplier, its weight decay at lr.

The step counter lives in the parameter group (`group["step"]`), so it travels with
state_dict(); the per-parameter state keeps torch's names where the meaning is torch's (Adam's
exp_avg, exp_avg_sq; RMSprop's square_avg, grad_avg), so a checkpoint written by torch's Adam or
RMSprop resumes; SGD's velocity and RMSprop's momentum are Keras's lr-scaled steps, new names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["KerasAdam", "KerasRMSprop", "KerasSGD"]


def _undecorated(method: Any) -> Any:
    """torch.optim.Optimizer's method without the wrapper that keeps torch.compile out of it, whose
    first call imports torch._dynamo: 1.8-2.0 s of a process's first fit on a 2-core CPU. hubel
    compiles the model alone (jit_compile), never its optimizer, so the wrapper has nothing to do."""
    return getattr(method, "__wrapped__", method)


class _KerasRule(torch.optim.Optimizer):
    """Shared: collect the parameters that have gradients, decay them (decoupled, Keras's
    `variable - variable * weight_decay * learning_rate`), then run the rule."""

    def __init__(self, parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]], **defaults: Any) -> None:
        super().__init__(parameters, {"weight_decay": 0.0, "step": 0, "lr_multiplier": 1.0, **defaults})

    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)

    def _buffers(self, parameters: list[Tensor], name: str) -> list[Tensor]:
        buffers = []
        for parameter in parameters:
            state = self.state[parameter]
            if name not in state:
                state[name] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
            buffers.append(state[name])
        return buffers

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Also a state written by torch's optimizer (a checkpoint from before hubel took Keras's
        rules): the step count then comes from torch's per-parameter `step`."""
        _undecorated(torch.optim.Optimizer.load_state_dict)(self, state_dict)
        for group in self.param_groups:
            group.setdefault("lr_multiplier", 1.0)
            if "step" not in group:
                steps = [self.state[p]["step"] for p in group["params"] if "step" in self.state[p]]
                group["step"] = int(max(steps)) if steps else 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            parameters = [p for p in group["params"] if p.grad is not None]
            if not parameters:
                continue
            gradients = [p.grad for p in parameters]
            if group["weight_decay"]:
                torch._foreach_mul_(parameters, 1.0 - group["weight_decay"] * group["lr"])
            group["step"] += 1
            multiplied = group["lr_multiplier"] != 1.0  # the step's rate only; the decay above took lr
            self._update({**group, "lr": group["lr"] * group["lr_multiplier"]} if multiplied else group, parameters,
                         gradients)  # fmt: skip
        return loss

    def _update(self, group: dict[str, Any], parameters: list[Tensor], gradients: list[Tensor]) -> None:
        raise NotImplementedError


class KerasSGD(_KerasRule):
    """m = momentum·m − lr·g; w += m (nesterov: w += momentum·m − lr·g); no momentum: w −= lr·g."""

    def __init__(
        self,
        parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(parameters, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)

    def _update(self, group: dict[str, Any], parameters: list[Tensor], gradients: list[Tensor]) -> None:
        rate, momentum = group["lr"], group["momentum"]
        if not momentum:
            torch._foreach_add_(parameters, gradients, alpha=-rate)
            return
        velocities = self._buffers(parameters, "velocity")
        torch._foreach_mul_(velocities, momentum)
        torch._foreach_add_(velocities, gradients, alpha=-rate)
        if group["nesterov"]:
            torch._foreach_add_(parameters, velocities, alpha=momentum)
            torch._foreach_add_(parameters, gradients, alpha=-rate)
        else:
            torch._foreach_add_(parameters, velocities)


class KerasAdam(_KerasRule):
    """Keras's Adam: alpha = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ); m += (g − m)(1 − β₁); v += (g² − v)(1 − β₂);
    (amsgrad: v̂ = max(v̂, v)); w −= alpha·m/(√v + ε). With weight_decay it is Keras's AdamW."""

    def __init__(
        self,
        parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-7,
        amsgrad: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(parameters, lr=lr, betas=betas, eps=eps, amsgrad=amsgrad, weight_decay=weight_decay)

    def _update(self, group: dict[str, Any], parameters: list[Tensor], gradients: list[Tensor]) -> None:
        (beta_1, beta_2), step = group["betas"], group["step"]
        means, velocities = self._buffers(parameters, "exp_avg"), self._buffers(parameters, "exp_avg_sq")
        if not group["amsgrad"] and _fused_adam_fits(parameters):
            # torch's fused kernel: one pass over each weight instead of seven. It adds its ε to
            # √v/√(1 − β₂ᵗ) where Keras adds ε to √v; given ε/√(1 − β₂ᵗ) it takes Keras's step,
            # (lr/(1 − β₁ᵗ))·m/((√v + ε)/√(1 − β₂ᵗ)) = alpha·m/(√v + ε). The CIFAR-10 tutorial
            # network's update in a bf16 fit at batch 128: 2.3 ms -> 1.0 (benchmarks/README.md).
            steps = [torch.tensor(float(step))] * len(parameters)  # read, not counted, by the kernel
            torch._fused_adam_(
                parameters, [g.contiguous() for g in gradients], means, velocities, [], steps,
                lr=group["lr"], beta1=beta_1, beta2=beta_2, weight_decay=0.0,
                eps=group["eps"] / math.sqrt(1.0 - beta_2**step), amsgrad=False, maximize=False,
            )  # fmt: skip
            return
        alpha = group["lr"] * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        torch._foreach_lerp_(means, gradients, 1.0 - beta_1)
        torch._foreach_lerp_(velocities, torch._foreach_mul(gradients, gradients), 1.0 - beta_2)
        if group["amsgrad"]:
            peaks = self._buffers(parameters, "max_exp_avg_sq")
            torch._foreach_maximum_(peaks, velocities)
            velocities = peaks
        denominators = torch._foreach_sqrt(velocities)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_addcdiv_(parameters, means, denominators, value=-alpha)


def _fused_adam_fits(parameters: list[Tensor]) -> bool:
    """Whether torch's fused Adam can take these weights: torch has it (2.4 and later, on CPUs)
    and they are contiguous float32 CPU tensors (its kernel walks a weight and its gradient in
    memory order, so the gradients are made contiguous too)."""
    return hasattr(torch, "_fused_adam_") and all(
        p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() for p in parameters
    )


class KerasRMSprop(_KerasRule):
    """Keras's RMSprop: v = ρv + (1 − ρ)g²; (centered: ḡ = ρḡ + (1 − ρ)g, v − ḡ²);
    step = lr·g/√(v + ε) (ε inside the root); momentum: m = μm + step; w −= m (or step)."""

    def __init__(
        self,
        parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
        lr: float,
        alpha: float = 0.9,
        eps: float = 1e-7,
        momentum: float = 0.0,
        centered: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            parameters, lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered, weight_decay=weight_decay
        )

    def _update(self, group: dict[str, Any], parameters: list[Tensor], gradients: list[Tensor]) -> None:
        rho = group["alpha"]
        velocities = self._buffers(parameters, "square_avg")
        torch._foreach_mul_(velocities, rho)
        torch._foreach_addcmul_(velocities, gradients, gradients, value=1.0 - rho)
        if group["centered"]:
            averages = self._buffers(parameters, "grad_avg")
            torch._foreach_mul_(averages, rho)
            torch._foreach_add_(averages, gradients, alpha=1.0 - rho)
            denominators = torch._foreach_addcmul(velocities, averages, averages, value=-1.0)
            torch._foreach_add_(denominators, group["eps"])
        else:
            denominators = torch._foreach_add(velocities, group["eps"])
        torch._foreach_sqrt_(denominators)
        if group["momentum"] > 0:
            momenta = self._buffers(parameters, "momentum")  # Keras's: lr-scaled steps, not torch's buffer
            torch._foreach_mul_(momenta, group["momentum"])
            torch._foreach_addcdiv_(momenta, gradients, denominators, value=group["lr"])
            torch._foreach_sub_(parameters, momenta)
        else:
            torch._foreach_addcdiv_(parameters, gradients, denominators, value=-group["lr"])
