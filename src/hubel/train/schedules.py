"""Learning-rate schedules: callables step -> rate, passed as an optimizer's learning_rate
(applied before every step), as Keras's LearningRateSchedule objects are.

    Adam(learning_rate=CosineDecay(1e-3, decay_steps=10_000, warmup_target=3e-3, warmup_steps=500))
"""

from __future__ import annotations

import math

from hubel.errors import ConfigError

__all__ = ["CosineDecay", "ExponentialDecay", "OneCycle", "StepDecay"]


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{owner}: expected `{name}` to be positive. Received: {name}={value!r}")


class StepDecay:
    """rate × factor^(step // step_size): divide by 1/factor every step_size steps.

    Example:
        >>> [StepDecay(0.1, step_size=10, factor=0.5)(step) for step in (0, 9, 10, 25)]
        [0.1, 0.1, 0.05, 0.025]
    """

    def __init__(self, initial_learning_rate: float, step_size: int, factor: float = 0.1) -> None:
        _positive("StepDecay", initial_learning_rate=initial_learning_rate, step_size=step_size, factor=factor)
        self.initial, self.step_size, self.factor = initial_learning_rate, step_size, factor

    def __call__(self, step: int) -> float:
        return self.initial * self.factor ** (step // self.step_size)


class ExponentialDecay:
    """Keras's ExponentialDecay: initial × decay_rate^(step / decay_steps) (integer power if staircase).

    Example:
        >>> round(ExponentialDecay(0.1, decay_steps=100, decay_rate=0.5)(50), 6)
        0.070711
    """

    def __init__(
        self, initial_learning_rate: float, decay_steps: int, decay_rate: float, staircase: bool = False
    ) -> None:
        _positive(
            "ExponentialDecay",
            initial_learning_rate=initial_learning_rate,
            decay_steps=decay_steps,
            decay_rate=decay_rate,
        )
        self.initial, self.decay_steps, self.decay_rate, self.staircase = (
            initial_learning_rate,
            decay_steps,
            decay_rate,
            staircase,
        )

    def __call__(self, step: int) -> float:
        power = step / self.decay_steps
        return self.initial * self.decay_rate ** (math.floor(power) if self.staircase else power)


class CosineDecay:
    """Keras's CosineDecay with warm-up: a linear climb from initial_learning_rate to
    warmup_target over warmup_steps, then a cosine fall over decay_steps to alpha × the peak.

    Example:
        >>> schedule = CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)
        >>> [round(schedule(step), 3) for step in (0, 5, 10, 60, 110, 200)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        alpha: float = 0.0,
        warmup_target: float | None = None,
        warmup_steps: int = 0,
    ) -> None:
        _positive("CosineDecay", decay_steps=decay_steps)
        self.initial, self.decay_steps, self.alpha = initial_learning_rate, decay_steps, alpha
        self.peak = initial_learning_rate if warmup_target is None else warmup_target
        self.warmup_steps = warmup_steps if warmup_target is not None else 0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial + (self.peak - self.initial) * step / self.warmup_steps
        progress = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.peak * ((1 - self.alpha) * cosine + self.alpha)


class OneCycle:
    """The one-cycle policy: from max/div_factor up to max_learning_rate over the first
    pct_start of total_steps, then down (cosine) to max/(div_factor × final_div_factor).

    Example:
        >>> schedule = OneCycle(1.0, total_steps=100, pct_start=0.25, div_factor=10, final_div_factor=100)
        >>> [round(schedule(step), 4) for step in (0, 25, 100)]
        [0.1, 1.0, 0.001]
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        _positive(
            "OneCycle",
            max_learning_rate=max_learning_rate,
            total_steps=total_steps,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
        )
        if not 0 < pct_start < 1:
            raise ConfigError(f"OneCycle: expected 0 < pct_start < 1. Received: pct_start={pct_start!r}")
        self.peak, self.pct_start = max_learning_rate, pct_start
        self.start, self.end = max_learning_rate / div_factor, max_learning_rate / (div_factor * final_div_factor)
        self.retarget(total_steps)

    def retarget(self, total_steps: int) -> None:
        """Stretch or shrink the cycle to `total_steps` (a time-budgeted run does, once it has timed
        its steps); the steps already taken keep the rates they had, closely when done early."""
        self.total = max(2, int(total_steps))
        self.rise = max(1, min(self.total - 1, round(self.total * self.pct_start)))

    def __call__(self, step: int) -> float:
        if step <= self.rise:
            low, high, progress = self.start, self.peak, step / self.rise
        else:
            low, high, progress = (
                self.peak,
                self.end,
                min(step - self.rise, self.total - self.rise) / (self.total - self.rise),
            )
        return high + (low - high) * 0.5 * (1 + math.cos(math.pi * progress))
