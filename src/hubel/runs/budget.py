"""--budget: a run sized in steps to the time given. A probe times a few steps and an inference
batch on a copy of the model; _Replan re-times the real steps and moves the plan."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hubel.data.folders import ImageFolderDataset
from hubel.errors import ConfigError
from hubel.models.sequential import Sequential
from hubel.runs.inference import _INFERENCE_BATCH
from hubel.train.callbacks import Callback, TrainingBudget
from hubel.train.distributed import World
from hubel.train.schedules import OneCycle

# The run's finish, as result.json measured it in 19 budget runs (2 cores, MNIST and CIFAR-10): the
# test pass took 0.96-1.44x (median 1.10) the probe's best inference batch an example; beyond it the
# report took 2.8-4.0 s, and saving the model and the run's files 0.6-0.9 s. Since the report's
# galleries build no ticks, the two together took 3.0-4.3 s in eight runs (MNIST 30 s and 60 s,
# CIFAR-10 60 s); the plan's 2% reserve covers the rest (benchmarks/README.md)
_TEST_PASS_OVER_PROBE = 1.1
_REPORT_AND_SAVING_SECONDS = 4.0
_MAX_BUDGET_EPOCHS = 200
# the inference probe's best of 3: after bf16 training, float32's first two batches ran 3x and 2x
# slower than the rest (kernels chosen anew), and one timing planned 4.6 s for a 1.4 s test pass. In
# float32 a single timing read 20% over a 10-minute CIFAR-10 run's validation and test pass, which
# lost 6 s of training to save 1.7 s of probe (benchmarks/README.md)
_INFERENCE_TIMINGS = 3
_PROBE_SECONDS = 2.0  # the probe's timed steps stop once they have taken this long (at most 6)
# On a CPU the probe times its steps at batches of at most this many examples a process and scales
# the time to the run's batch: a CPU's step costs its examples' worth (airbench_small, float32, 2
# cores: 5.7-6.6 ms an example at batches of 256 to 1,024, 5.7-7.4 at 128), and a step of 1,024 took
# 5.8 s, its warm-up 5.5-6.3 s (benchmarks/README.md). A GPU's large batch costs less than its examples' worth.
_CPU_PROBE_BATCH = 256
# Transfer learning under a budget runs at the backbone's own input size where the run fits, else at
# the largest of these sides that fits: the feature pass costs less with fewer pixels, and MobileNetV2's
# head reached 95.75% on the cats-vs-dogs photos at 160x160 where 224x224 gave 98.5% (benchmarks/README.md)
_TRANSFER_SIDES = (192, 160, 128, 96)
# After the pass, on the cats-vs-dogs photos (2 cores): building the extractor again, the head's 20
# epochs on 800 images' features and attaching it took 1.0-1.8 s; saving the model (the backbone's
# weights too), the test pass on cached features and the report 3.95-4.14 s (each set a little above)
_TRANSFER_HEAD_SECONDS, _TRANSFER_FINISH_SECONDS = 2.0, 4.5
# The pass's time at another size, as (its pixels / the timed size's) ** this: smaller images keep the
# cores less busy. MobileNetV2 against 224x224 here: 0.42 of the time at 128x128 (0.33 of the pixels),
# 0.23 at 96x96 (0.18), batches of 8
_TRANSFER_PIXEL_EXPONENT = 0.8


def _steps_per_epoch(train_data: Any, batch_size: int, holdout: float = 0.0, processes: int = 1) -> int:
    """Training steps in one epoch: a folder's batches, or what fit keeps of an array pair when it
    holds out the last `holdout` for validation; on several processes, global batches of
    batch_size × processes."""
    if isinstance(train_data, ImageFolderDataset):
        return math.ceil(train_data.num_examples / (batch_size * processes))
    return math.ceil(_kept(len(train_data[0]), holdout) / (batch_size * processes))


def _kept(examples: int, holdout: float) -> int:
    """What fit trains on of `examples` when it holds out the last `holdout` (fit's own rounding)."""
    return int(examples * (1 - holdout)) if holdout else examples


def _steps_that_fit(
    left: float, seconds_per_step: float, validation_seconds: float, steps_per_epoch: int, done: int = 0
) -> tuple[int, int]:
    """(total steps, epochs) that fill `left` seconds with training steps after the `done` ones,
    and one validation at the end of each epoch still to finish (the last one may be partial)."""
    finished = done // steps_per_epoch
    epochs, total = finished + 1, done + 1
    for _ in range(4):  # the epochs decide how often validation runs, which decides the steps: settles in two
        total = done + max(1, int((left - (epochs - finished) * validation_seconds) / seconds_per_step))
        epochs = min(_MAX_BUDGET_EPOCHS, max(finished + 1, math.ceil(total / steps_per_epoch)))
    return min(total, epochs * steps_per_epoch), epochs


class _Replan(Callback):
    """The budget's second look: every `measured` real steps (past the first `settle`, which are
    slow while the kernels are chosen), and at each epoch's end (when the cost of validating,
    logging and checkpointing an epoch is known), re-time the run and set the step limit and the
    one-cycle schedule to what is left of the time, and fit's epochs (params["epochs"]) to the
    plan's. The probe before training is short and on a copy, so this is where the plan gets its
    real speed: it re-times after 2, 4 and 8 steps, then every 16, and on the plan's last step
    but one, so a plan made from a probe that another process slowed is corrected in time; once
    an epoch has ended, what it cost beyond its steps replaces the probe's estimate of validation
    (the test pass keeps the probe's: benchmarks/README.md, time_to_accuracy.py). The plan ends
    one step short of the deadline, so the schedule anneals fully and the deadline stays a guard
    for a machine that slows down."""

    def __init__(
        self, limit: TrainingBudget, schedule: OneCycle, plan: dict[str, Any], fit_ends_at: float, world: World
    ) -> None:
        self.limit, self.schedule, self.plan, self.fit_ends_at = limit, schedule, plan, fit_ends_at
        self.world = world  # on several processes, process 0's plan holds for all
        self.settle, self.measured, self.taken = 2, 16, 0
        self.per_step, self.per_epoch_extra, self.epoch_started, self.epoch_steps = 0.0, 0.0, 0.0, 0
        self.window_started, self.window_steps = 0.0, 0  # steps timed in this epoch, past the settling ones

    def on_train_begin(self, logs: dict[str, float]) -> None:
        self.train_started = time.perf_counter()
        # seconds into the run: what came between the plan and the first step is the fit's loss
        self.plan["fit_began_after"] = self.train_started - (self.fit_ends_at - self.plan["fit_ends_after"])

    def on_epoch_begin(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch_started = self.window_started = time.perf_counter()
        self.epoch_steps = self.window_steps = 0
        self.plan.setdefault("fit_start_seconds", self.epoch_started - self.train_started)

    def on_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        self.taken += 1
        self.epoch_steps += 1
        if self.taken <= self.settle:
            self.window_started = time.perf_counter()
            self.plan["settle_seconds"] = self.window_started - self.epoch_started
            return
        self.window_steps += 1
        early = self.window_steps in (2, 4, 8) or self.taken == self.limit.steps - 1
        if early or self.window_steps % self.measured == 0:
            self.per_step = (time.perf_counter() - self.window_started) / self.window_steps
            self._replan(self.per_epoch_extra or self.plan["validation_seconds_per_epoch"])

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        # the epoch's time beyond its steps: validation (done by now) and the epoch's logging
        spent = time.perf_counter() - self.epoch_started
        self.plan["epoch_extra_seconds"] = spent - self.epoch_steps * self.per_step  # the last epoch's
        if self.per_step and self.epoch_steps:
            self.per_epoch_extra = max(self.per_epoch_extra, spent - self.epoch_steps * self.per_step)
            self._replan(self.per_epoch_extra)

    def _replan(self, per_epoch_extra: float) -> None:
        """Called at the same steps in every process (so the broadcast meets); a run already
        stopped keeps its plan."""
        plan, left = self.plan, self.fit_ends_at - time.perf_counter() - self.per_step  # a step short
        total, _ = _steps_that_fit(left, self.per_step, per_epoch_extra, plan["steps_per_epoch"], done=self.taken)
        total = max(self.taken + 1, min(total, _MAX_BUDGET_EPOCHS * plan["steps_per_epoch"]))
        decided = self.world.broadcast((self.limit.stopped_by is None, total, self.per_step, per_epoch_extra))
        if not decided[0]:
            return
        total, self.per_step, per_epoch_extra = decided[1:]
        self.limit.steps = total
        if self.limit.seconds is not None:  # the guard: the end, less the last validation as now estimated
            self.limit.seconds = max(1.0, self.fit_ends_at - per_epoch_extra - self.train_started)
        self.schedule.retarget(total)
        plan.update(seconds_per_step_in_training=self.per_step, total_steps=total,
                    epochs=math.ceil(total / plan["steps_per_epoch"]),
                    last_replan={"after_steps": self.taken, "seconds_left": left})  # fmt: skip
        self.params["epochs"] = plan["epochs"]  # fit ends, and counts, at the plan's epochs


def _plan_budget(
    network: Sequential,
    train_data: Any,
    validation: Any,
    test: Any,
    batch_size: int,
    budget: float,
    started: float,
    processes: int = 1,
    holdout: float = 0.0,
    scaled_from: dict[str, Any] | None = None,
    enough_epochs: float | None = None,
) -> dict[str, Any]:
    """Time a few training steps and a few inference batches on a throwaway copy of the model (its
    weights, optimizer and the random state stay as they were), then size the run in steps: what
    is left of the budget, less the measured cost of validating each epoch and of the test pass,
    the saving and the report at the end, is spent training. The epochs are whole passes over the
    data but the last, which stops at the planned step. On several processes every one takes part
    in the timed steps (they include the processes' communication) and process 0's plan is used.
    fit holds out the last `holdout` of array data for validation (none without validation data).
    `scaled_from`: this network's plan at another batch size, whose step time is scaled to this
    batch in proportion to the examples instead of timed again (_Replan re-times the real steps).
    `enough_epochs`: the fewest epochs the caller keeps this network for. Where all that is left of
    the budget, nothing kept for the finish, buys fewer, inference is not timed (on CIFAR-10's
    airbench_small, three batches of 256 took 2.5 s): the plan's steps are then that upper bound,
    and "at_most" says so."""
    if budget <= 0:
        raise ConfigError(f"expected a positive time budget. Received: {budget}")
    global_batch = batch_size * processes
    if isinstance(train_data, ImageFolderDataset):
        validation_steps = math.ceil(len(validation) / processes) if validation is not None else 0
    else:
        x_all = train_data[0]
        held_out = len(validation[0]) if validation is not None else len(x_all) - _kept(len(x_all), holdout)
        validation_steps = math.ceil(held_out / (batch_size * processes))  # each process validates its part
    steps_per_epoch = _steps_per_epoch(train_data, batch_size, holdout, processes)
    test_examples = len(test[0]) if isinstance(test, tuple) else len(getattr(test, "labels", test))

    def upper_bound(seconds_per_step: float) -> int:  # the steps that all of what is left would buy
        return max(1, int((budget - (time.perf_counter() - started)) / seconds_per_step))

    if scaled_from is None:
        probe_batch = _probe_batch(network, batch_size)
        timed_at_batch = probe_batch * processes

        def enough(timed_step: float) -> bool:
            steps = upper_bound(timed_step * global_batch / timed_at_batch)
            return enough_epochs is None or steps >= enough_epochs * steps_per_epoch

        timed_step, timed_steps, seconds_per_example = _probe(network, train_data, probe_batch, processes, enough)
        seconds_per_step = timed_step * global_batch / timed_at_batch
    else:
        timed_steps, timed_at_batch = 0, scaled_from["timed_at_batch"]
        seconds_per_step = scaled_from["seconds_per_step"] * global_batch / scaled_from["batch_size"]
        seconds_per_example = scaled_from["inference_seconds_per_example"]
    timing = {"seconds": budget, "seconds_per_step": seconds_per_step, "timed_steps": timed_steps,
              "batch_size": global_batch, "timed_at_batch": timed_at_batch,
              "steps_per_epoch": steps_per_epoch}  # fmt: skip
    if seconds_per_example is None:  # too slow to be kept: what the caller needs is the upper bound
        total_steps = upper_bound(seconds_per_step)
        return {**timing, "epochs": math.ceil(total_steps / steps_per_epoch), "total_steps": total_steps,
                "at_most": True, "planned_after": time.perf_counter() - started}  # fmt: skip
    validation_seconds = validation_steps * batch_size * seconds_per_example
    finish_seconds = test_examples * seconds_per_example * _TEST_PASS_OVER_PROBE + _REPORT_AND_SAVING_SECONDS
    after_probe = budget - (time.perf_counter() - started)
    # 2% held back: the test pass ran up to 1 s over its estimate from a 256-example probe; a budget
    # too small for the report still trains for half of it
    left = max(after_probe - finish_seconds - 0.02 * budget, budget / 2)
    total_steps, epochs = _steps_that_fit(left, seconds_per_step, validation_seconds, steps_per_epoch)
    planned_after = time.perf_counter() - started  # loading the data and the probe, so far
    fit_ends_after = planned_after + left  # seconds into the run
    return {**timing, "epochs": epochs, "total_steps": total_steps,
            "validation_seconds_per_epoch": validation_seconds, "finish_seconds_planned": finish_seconds,
            "inference_seconds_per_example": seconds_per_example,
            "planned_after": planned_after, "fit_ends_after": fit_ends_after}  # fmt: skip


def _probe_batch(network: Sequential, batch_size: int) -> int:
    """The batch a process times the probe's steps at: the run's, or on a CPU at most _CPU_PROBE_BATCH."""
    parameter = next(network.parameters(), None)
    on_cpu = parameter is None or parameter.device.type == "cpu"
    return min(batch_size, _CPU_PROBE_BATCH) if on_cpu else batch_size


def _probe(
    network: Sequential,
    train_data: Any,
    batch_size: int,
    processes: int,
    time_inference: Callable[[float], bool] = lambda seconds_per_step: True,
) -> tuple[float, int, float | None]:
    """(seconds a training step, the steps timed, PyTorch's inference seconds an example), timed
    on a throwaway copy of the model; its random state is restored. Inference is timed where
    `time_inference(seconds a step)` says so, else None."""
    global_batch = batch_size * processes
    if isinstance(train_data, ImageFolderDataset):
        batches = []
        for x, y in train_data:
            batches.append((x, y))
            if len(batches) == 8 * processes:
                break
        x_probe, y_probe = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
        train_data.set_epoch(0)
    else:
        x_all, y_all = train_data
        x_probe, y_probe = x_all[: global_batch * 8], y_all[: global_batch * 8]
    random_state = torch.get_rng_state()
    probe = copy.deepcopy(network)
    # A step costs the same at any rate: the copy's weights barely move, so that the recipe's peak
    # rate, which the run reaches only after its warm-up, cannot drive the probe to NaN (it did on MNIST)
    probe.optimizer.learning_rate = probe.optimizer.learning_rate * 1e-6
    distributed = processes > 1
    probe.fit(x_probe[:global_batch], y_probe[:global_batch], batch_size=batch_size, verbose=0,
              distributed=distributed)  # warm-up  # fmt: skip
    # a rough figure (_Replan re-times the run's own steps): 6 steps, or fewer where they take seconds,
    # since the probe's steps train nothing
    x_timed, y_timed = x_probe[: global_batch * 6], y_probe[: global_batch * 6]
    timed = TrainingBudget(seconds=_PROBE_SECONDS)
    start = time.perf_counter()
    probe.fit(x_timed, y_timed, batch_size=batch_size, verbose=0, distributed=distributed, callbacks=[timed])
    seconds_per_step = (time.perf_counter() - start) / timed.taken
    seconds_per_example = None
    if time_inference(seconds_per_step):
        probe.trainer.use_precision(None)  # the test pass runs in float32, as the saved model predicts
        seconds_per_example = min(
            _seconds_per_example(probe, x_probe[:_INFERENCE_BATCH]) for _ in range(_INFERENCE_TIMINGS)
        )
    torch.set_rng_state(random_state)
    return seconds_per_step, timed.taken, seconds_per_example


def _seconds_per_example(network: Sequential, x: Any) -> float:
    """PyTorch's inference time per example, on one batch."""
    start = time.perf_counter()
    network.predict(x, batch_size=len(x))
    return (time.perf_counter() - start) / len(x)


def _plan_line(plan: dict[str, Any]) -> str:
    """The plan in one line for the console; a budget shorter than the run's fixed costs (loading,
    the probe, the test pass and the report) says so, and when the run will end instead.

    Example:
        >>> _plan_line({"seconds": 60, "seconds_per_step": 0.131, "total_steps": 380, "epochs": 1,
        ...             "planned_after": 4.2, "fit_ends_after": 52.0, "finish_seconds_planned": 6.8})
        'Budget 60 s: 131 ms a step, so 380 steps in 1 epoch; 6.8 s kept for the test pass and the report.'
    """
    budget, finish, epochs = plan["seconds"], plan["finish_seconds_planned"], plan["epochs"]
    timed_at = plan.get("timed_at_batch")
    scaled = f" (scaled from batch {timed_at}'s)" if timed_at and timed_at != plan.get("batch_size", timed_at) else ""
    steps = f"{plan['seconds_per_step'] * 1000:.0f} ms a step{scaled}, so {plan['total_steps']} steps in {epochs} epoch"
    steps += "" if epochs == 1 else "s"
    ends = plan["fit_ends_after"] + finish
    if ends <= budget * 1.05:
        return f"Budget {budget:g} s: {steps}; {finish:.1f} s kept for the test pass and the report."
    fixed = plan["planned_after"] + finish
    return (
        f"Budget {budget:g} s is shorter than this run's fixed costs (starting, loading and timing took "
        f"{plan['planned_after']:.1f} s; the test pass and the report need about {finish:.1f} s): {steps} "
        f"anyway, ending after about {ends:.0f} s. --budget {math.ceil(2 * fixed)}s or more trains for most of it."
    )


def _plan_transfer(backbone: str, loaded: dict[str, Any], budget: float, started: float,
                   sizes: list[tuple[int, int]], loading_seconds: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Transfer learning's plan for a budget: time the frozen backbone on a few training images at
    the size they were loaded at (sizes[0]), then take the first of `sizes` (largest first) at which
    the feature pass over the images whose features are not cached yet, the head, the test pass and
    the report end within the budget; the last size where none does. The pass's time at another
    size follows the pixels (to _TRANSFER_PIXEL_EXPONENT), and another size loads the images again
    (loading_seconds, what loading them took). A folder without test/ is measured on its validation
    split, whose features the pass computes anyway."""
    from hubel.models.applications.transfer import feature_extractor, features_cached

    if budget <= 0:
        raise ConfigError(f"expected a positive time budget. Received: {budget}")
    random_state = torch.get_rng_state()  # building the extractor draws initial weights: the run's draws stay
    extractor = feature_extractor(backbone, loaded["shape"])
    torch.set_rng_state(random_state)
    seconds_per_image = _feature_seconds(extractor, loaded["train"].numpy(40)[0])
    parts = [loaded["train"], loaded["validation"], loaded["test"] if loaded.get("test_split") == "test" else None]
    parts = [part for part in parts if part is not None]
    images = sum(part.num_examples for part in parts)
    uncached = sum(part.num_examples for part in parts if not features_cached(extractor, part))
    planned_after = time.perf_counter() - started
    loaded_pixels = sizes[0][0] * sizes[0][1]

    def per_image(size: tuple[int, int]) -> float:
        return seconds_per_image * (size[0] * size[1] / loaded_pixels) ** _TRANSFER_PIXEL_EXPONENT

    def ends_after(size: tuple[int, int]) -> float:
        again = size != sizes[0]  # loaded again at that size, and every image's features computed
        computed, loading = (images, loading_seconds) if again else (uncached, 0.0)
        return planned_after + loading + computed * per_image(size) + _TRANSFER_HEAD_SECONDS + _TRANSFER_FINISH_SECONDS

    chosen = next((size for size in sizes if ends_after(size) <= budget * 0.98), sizes[-1])
    return {"seconds": budget, "backbone": backbone, "image_size": list(chosen),
            "sizes_considered": [list(size) for size in sizes], "timed_at": list(sizes[0]),
            "seconds_per_image": per_image(chosen), "loading_seconds": loading_seconds,
            "images": images, "images_to_compute": uncached if chosen == sizes[0] else images,
            "planned_after": planned_after, "ends_after": ends_after(chosen),
            "largest_ends_after": ends_after(sizes[0])}  # fmt: skip


def _feature_seconds(extractor: Any, images: np.ndarray) -> float:
    """The frozen backbone's seconds an image, in the feature pass's batches of 8: the best of up to
    three batches after two that warm it up (they ran 1.5-3x slower than the rest), since this
    machine's speed moves between batches."""
    from hubel.models.applications.transfer import extract_features

    batches = [images[start : start + 8] for start in range(0, len(images), 8)]
    runs = batches if len(batches) >= 3 else [*batches, batches[-1]]  # one at least after a warm-up
    warm_up, timings = min(2, len(runs) - 1), []
    for index, batch in enumerate(runs):
        start = time.perf_counter()
        extract_features(extractor, batch, cache=False, verbose=False)
        if index >= warm_up:
            timings.append((time.perf_counter() - start) / len(batch))
    return min(timings)


def _transfer_plan_line(plan: dict[str, Any]) -> str:
    """The transfer plan in one line for the console.

    Example:
        >>> line = _transfer_plan_line({"seconds": 20, "backbone": "mobilenet_v2", "image_size": [160, 160],
        ...     "timed_at": [224, 224], "seconds_per_image": 0.009, "images": 1200, "images_to_compute": 1200,
        ...     "ends_after": 17.8, "largest_ends_after": 29.6})
        >>> line.startswith("Budget 20 s: transfer learning from mobilenet_v2 at 160x160 (224x224 would end after")
        True
        >>> line.endswith("1200 images at 9 ms each, a head, the test pass and the report, ending after about 18 s.")
        True
    """
    budget, size = plan["seconds"], "x".join(map(str, plan["image_size"]))
    computed, cached = plan["images_to_compute"], plan["images"] - plan["images_to_compute"]
    at = f" at {plan['seconds_per_image'] * 1000:.0f} ms each"
    features = f"features of {computed} images{at}" + (f" and {cached} from the cache" if cached else "")
    if not computed:
        features = f"features of {cached} images from the cache"
    work = f"{features}, a head, the test pass and the report"
    start = f"transfer learning from {plan['backbone']} at {size}"
    if plan["image_size"] != plan["timed_at"]:
        start += f" ({'x'.join(map(str, plan['timed_at']))} would end after about {plan['largest_ends_after']:.0f} s)"
    if plan["ends_after"] <= budget:
        return f"Budget {budget:g} s: {start}: {work}, ending after about {plan['ends_after']:.0f} s."
    return (
        f"Budget {budget:g} s is shorter than {start} takes ({work}): it runs anyway, ending after about "
        f"{plan['ends_after']:.0f} s. --budget {math.ceil(plan['ends_after'] * 1.1)}s or more fits it."
    )
