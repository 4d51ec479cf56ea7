"""The learning-rate range test (fastai's lr_find): train a few hundred steps while the rate
grows exponentially, record the smoothed loss, suggest the rate where it falls fastest, and
put the model, the optimizer and the random state back as they were."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hubel.errors import ConfigError

if TYPE_CHECKING:
    from hubel.train.trainer import Trainer

__all__ = ["LearningRateCurve", "find_learning_rate"]


@dataclass(frozen=True)
class LearningRateCurve:
    rates: list[float]
    losses: list[float]  # exponentially smoothed, bias-corrected
    suggestion: float  # a tenth of the rate with the lowest loss: safely below where training blows up
    steepest: float  # where the smoothed loss falls fastest (per log-step of the rate): an upper bound


def find_learning_rate(
    trainer: Trainer,
    x: Any,
    y: Any = None,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> LearningRateCurve:
    """Run the range test on `trainer`'s model and optimizer; nothing it does is kept."""
    from hubel.train.batches import batches_of
    from hubel.train.trainer import _Running

    if not 0 < start < end or steps < 5:
        raise ConfigError(
            f"lr_find: expected 0 < start < end and steps >= 5. Received: start={start}, end={end}, steps={steps}"
        )
    trainer._build_optimizer()
    optimizer = trainer.optimizer
    saved_model = copy.deepcopy(trainer.model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_rate, saved_random, saved_schedule = optimizer.learning_rate, torch.get_rng_state(), optimizer.schedule
    optimizer.schedule = None
    batches = batches_of(x, y, batch_size, True, 0, trainer.inputs)
    rates, losses, average, best = [], [], 0.0, math.inf
    trainer.model.train()
    try:
        step, epoch = 0, 0
        while step < steps:
            for x_batch, y_batch, _ in batches.epoch(epoch):
                rate = start * (end / start) ** (step / (steps - 1))
                for group in optimizer.torch.param_groups:  # type: ignore[union-attr]
                    group["lr"] = rate
                x_batch, y_batch = trainer._to_device(x_batch), trainer._to_device(y_batch)
                loss = float(trainer._train_step(x_batch, y_batch, None, _Running()).detach())
                average = smoothing * average + (1 - smoothing) * loss
                smoothed = average / (1 - smoothing ** (step + 1))
                rates.append(rate)
                losses.append(smoothed)
                step += 1
                best = min(best, smoothed)
                if not math.isfinite(smoothed) or smoothed > diverge * best or step >= steps:
                    step = steps
                    break
            epoch += 1
    finally:
        trainer.model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        optimizer.learning_rate = saved_rate
        optimizer.schedule = saved_schedule
        torch.set_rng_state(saved_random)
        for metric in trainer.metrics:
            metric.reset()
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    lowest = min(finite, key=lambda i: losses[i]) if finite else 0
    return LearningRateCurve(rates, losses, rates[lowest] / 10, _steepest(rates, losses))


def _steepest(rates: list[float], losses: list[float]) -> float:
    skip = max(1, len(losses) // 10)  # the first steps are noise around the starting loss
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss) and i >= skip]
    if len(finite) < 3:
        return rates[0]
    lowest = min(finite, key=lambda i: losses[i])
    window = [i for i in finite if i <= lowest] or finite
    if len(window) < 3:
        return rates[lowest] / 10
    slopes = np.gradient(np.array([losses[i] for i in window]), np.log([rates[i] for i in window]))
    return float(rates[window[int(np.argmin(slopes))]])
