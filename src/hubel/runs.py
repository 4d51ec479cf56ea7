"""Training runs: one call from a built-in dataset or a folder of images to a run directory
holding everything — what `hubel train` does.

    result = hubel.runs.train("fashion_mnist", model="fashion_cnn", epochs=5)

runs/NAME/ holds config.yaml (everything needed to rerun), metrics.jsonl (one line per epoch,
flushed), checkpoints/last.ckpt (atomic; `resume=True` continues after a crash or Ctrl-C),
model.hubel (weights, architecture, class names, preprocessing), report.html and train.log.
An existing run directory is never overwritten: resume it or choose another name.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from hubel import __version__
from hubel.data import datasets, imdb
from hubel.data.folders import ImageFolderDataset, image_folder
from hubel.data.images import image_extensions
from hubel.data.text import read_text_file, text_folder
from hubel.errors import ConfigError, DataError
from hubel.layers.augment import RandomFlip, augmentation
from hubel.layers.base import clear_session
from hubel.layers.core import Input, Rescaling
from hubel.layers.text import TextVectorization
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model, is_text, top_classes
from hubel.models.sequential import Sequential
from hubel.models.spec import model_from_spec
from hubel.models.zoo import ZOO, Recipe, create_model
from hubel.train.callbacks import Callback, EarlyStopping, JSONLinesLogger, TrainingBudget
from hubel.train.checkpoint import checkpoint_exists
from hubel.train.distributed import World, cores, init, launch
from hubel.train.history import STEP_CURVES_UP_TO
from hubel.train.optimizers import OPTIMIZERS, Optimizer, get_optimizer
from hubel.train.progress import format_logs
from hubel.train.schedules import OneCycle
from hubel.train.trainer import set_seed

__all__ = ["RunResult", "compare", "evaluate", "list_runs", "predict_files", "report_run", "train"]

_PRECISIONS = {"auto": "auto", "float32": None, "bf16": "bf16"}  # --precision -> compile(mixed_precision=)

# The residual networks train to the best accuracy per CPU-second; the narrowest takes 60% of
# fast_resnet's time a step and reached 2-7 points more in runs of 1-3 minutes on two cores
# (benchmarks/README.md). Digits' 8x8 images need no more than one convolution.
_DEFAULT_MODEL = {"mnist": "fast_resnet_small", "fashion_mnist": "fast_resnet_small", "digits": "mnist_one_conv",
                  "cifar10": "fast_resnet_small", "imdb": "ngram_bag"}  # fmt: skip
# Built-in datasets whose classes look the same in a mirror (not digits, not Fashion-MNIST's
# shoes, which all point left): --tta auto averages their predictions over the mirror image.
_MIRRORED = ("cifar10",)
_DEFAULT_TEXT_MODEL = "ngram_bag"  # bigrams averaged: 90% on IMDB in seconds per epoch (benchmarks/README.md)


@dataclass(frozen=True)
class RunResult:
    directory: Path
    test_accuracy: float
    test_loss: float
    seconds: float

    @property
    def model_path(self) -> Path:
        return self.directory / "model.hubel"

    @property
    def report_path(self) -> Path:
        return self.directory / "report.html"


class _LogFile(Callback):
    """The epoch lines of the console, also in train.log; out of `epochs`, or of fit's own epochs
    (which a budget's re-plan moves)."""

    writes_files = True

    def __init__(self, path: Path, epochs: int | None = None) -> None:
        self.path, self.epochs = path, epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        with open(self.path, "a") as file:
            file.write(f"Epoch {epoch + 1}/{self.epochs or self.params['epochs']} - {format_logs(logs)}\n")


def _load_data(
    data: str, image_size: tuple[int, int] | None, batch_size: int, seed: int, verbose: bool = True
) -> dict[str, Any]:
    """Training, validation and test data for a built-in name or a folder (of images or of text
    files: then "kind" is "text" and x holds strings)."""
    if data in datasets.list_datasets():
        info = datasets.info(data)
        if info.kind == "text":
            (x_train, y_train), (x_test, y_test) = imdb.load_texts()
            return {"train": (x_train, y_train), "validation": None, "test": (x_test, y_test),
                    "class_names": list(info.class_names), "shape": None, "kind": "text"}  # fmt: skip
        (x_train, y_train), (x_test, y_test) = datasets.load(data)
        return {"train": (x_train, y_train), "validation": None, "test": (x_test, y_test),
                "class_names": list(info.class_names), "shape": x_train.shape[1:], "kind": "image"}  # fmt: skip
    root = Path(data)
    if not root.is_dir():
        close = [name for name in datasets.list_datasets() if name[:3] == data[:3]]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{data!r} is neither a built-in dataset ({', '.join(datasets.list_datasets())}) nor a folder.{hint}"
        )
    if _holds_text(root):
        train, validation = text_folder(root, validation_split=0.2, subset="both", seed=seed)
        try:
            test = text_folder(root, subset="test", verbose=False)
        except ConfigError:
            test = validation  # no test/ folder: report on the validation texts
        return {"train": train.numpy(), "validation": validation.numpy(), "test": test.numpy(),
                "class_names": train.class_names, "shape": None, "kind": "text"}  # fmt: skip
    size = image_size or (160, 160)
    train, validation = image_folder(
        root, size, batch_size, validation_split=0.2, subset="both", seed=seed, verbose=verbose
    )
    try:
        test: Any = image_folder(root, size, batch_size, subset="test", verbose=False)
    except ConfigError:
        test = validation  # no test/ folder: report on the validation images
    return {"train": train, "validation": validation, "test": test, "class_names": train.class_names,
            "shape": (*size, 3), "kind": "image"}  # fmt: skip


def _data_kind(data: str) -> str:
    """ "text" for a text dataset or a folder of text files, else "image"."""
    if data in datasets.list_datasets():
        return datasets.info(data).kind
    return "text" if Path(data).is_dir() and _holds_text(Path(data)) else "image"


def _holds_text(root: Path) -> bool:
    """Whether a folder of class folders holds text files rather than images (by the first files found)."""
    images = image_extensions()
    counts = {"text": 0, "image": 0}
    for path in itertools.islice((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")), 200):
        suffix = path.suffix.lower()
        if suffix == ".txt":
            counts["text"] += 1
        elif suffix in images:
            counts["image"] += 1
    return counts["text"] > counts["image"]


def _text_model(name: str, texts: Any, num_classes: int) -> Sequential:
    """A zoo text model with a TextVectorization in front, adapted on the training texts: the
    model (and its file) then takes raw strings."""
    entry = ZOO.get(name) if name in ZOO else None
    if entry is None or entry.text is None:
        text_models = [known for known in ZOO.names() if ZOO.get(known).text is not None]
        raise ConfigError(
            f"{name!r} is not a text model; the data is text. Use one of {', '.join(text_models)} (`hubel zoo`)."
        )
    network = create_model(name, num_classes=num_classes)
    vectorizer = TextVectorization(
        max_tokens=entry.text.max_tokens, ngrams=entry.text.ngrams, output_sequence_length=entry.input_shape[0]
    )
    vectorizer.adapt(texts)
    return Sequential([vectorizer, *network.layers], name=network.name)


def _build_model(name: str, shape: tuple[int, ...], num_classes: int, augment: str | None) -> tuple[Sequential, str]:
    """The network for a zoo name or spec file, and its name; augmentation layers, if asked
    for, go right after the zoo's Rescaling."""
    input_shape = (*shape, 1) if len(shape) == 2 else tuple(shape)
    if name in ZOO or not Path(name).exists():
        network = create_model(name, num_classes=num_classes, input_shape=input_shape)
    else:
        network, name = model_from_spec(name, input_shape=input_shape), Path(name).stem
    if augment:
        layers = network.layers
        at = 1 if layers and isinstance(layers[0], Rescaling) else 0
        network = Sequential(
            [Input(input_shape), *layers[:at], *augmentation(augment), *layers[at:]], name=network.name
        )
    return network, name


def _test_time_augmentation(tta: str, network: Model, data: str) -> str | None:
    """The model's test_time_augmentation for --tta: "flip", "none", or "auto" (flip for data
    known to be mirror-symmetric, or when the network trains on flipped images)."""
    if tta == "auto":
        flips = any(isinstance(layer, RandomFlip) and "horizontal" in layer.mode for layer in network.modules())
        return "flip" if flips or data in _MIRRORED else None
    return None if tta == "none" else "flip"


def _optimizer(recipe: Recipe, optimizer: str | None, learning_rate: float | None) -> tuple[Optimizer, bool]:
    """The optimizer the options name (at Keras's defaults), else the recipe's; the rate given,
    else the recipe's, else the optimizer's default. Also whether a rate was chosen (by the
    user or the recipe), which a one-cycle schedule then takes as its peak."""
    if optimizer is not None:
        chosen = get_optimizer(optimizer)
        rate = learning_rate
    else:
        chosen = OPTIMIZERS.get(recipe.optimizer)(**recipe.optimizer_settings)
        rate = learning_rate if learning_rate is not None else recipe.learning_rate
    if rate is not None:
        chosen.learning_rate = rate
    return chosen, rate is not None


def _forget_epochs_after_checkpoint(directory: Path) -> None:
    """A run killed after an epoch's log lines but before its checkpoint redoes that epoch on
    resume: drop its lines from metrics.jsonl and train.log first, so every epoch is logged once."""
    from hubel.train.checkpoint import load_checkpoint

    done = int(load_checkpoint(directory / "checkpoints" / "last.ckpt", warn=False)["epoch"])
    metrics = directory / "metrics.jsonl"
    if metrics.exists():
        kept = [line for line in metrics.read_text().splitlines() if line and json.loads(line)["epoch"] < done]
        metrics.write_text("".join(line + "\n" for line in kept))
    log = directory / "train.log"
    if log.exists():
        kept = [line for line in log.read_text().splitlines() if int(line.split()[1].split("/")[0]) <= done]
        log.write_text("".join(line + "\n" for line in kept))


_VALIDATION_SPLIT = 0.1  # of a built-in training set, held out by fit for validation

# Transfer learning, chosen on the cats-vs-dogs photos (benchmarks/transfer.py)
_TRANSFER_HEAD_EPOCHS = 20
_TRANSFER_FINE_TUNE_BLOCKS = 3
_TRANSFER_FINE_TUNE_EPOCHS = 3


def _steps_per_epoch(train_data: Any, batch_size: int, validation: Any = None, processes: int = 1) -> int:
    """Training steps in one epoch: a folder's batches, or what fit keeps of an array pair (all of
    it when the validation data is separate); on several processes, global batches of
    batch_size × processes."""
    if isinstance(train_data, ImageFolderDataset):
        return math.ceil(train_data.num_examples / (batch_size * processes))
    kept = len(train_data[0]) if validation is not None else int(len(train_data[0]) * (1 - _VALIDATION_SPLIT))
    return math.ceil(kept / (batch_size * processes))


_INFERENCE_BATCH = 256  # the test pass at the end of a run, and the budget probe that times it
# ONNX Runtime on a test pass: its lowest lead over PyTorch measured here (0.90x the time since
# PyTorch's blocks stay allocated, train/allocator.py), and its start: 0.15-0.3 s to export, check
# and open a session, plus 1.4 s to import onnx the first time (torch's exporter needs it). A pass
# that saves less runs on PyTorch (benchmarks/README.md).
_ONNX_SPEEDUP = 1.10
_ONNX_START_SECONDS = 0.3
_ONNX_FIRST_START_SECONDS = 1.9
_REPORT_SECONDS = 3.5  # the report beyond the test pass it is handed: 3.1-3.3 s measured (result.json report_seconds)
_MAX_BUDGET_EPOCHS = 200


def _test_outputs(
    network: Model, inputs: Any, engine: str = "auto", seconds_per_example: float | None = None
) -> tuple[np.ndarray, str]:
    """The model's outputs on `inputs` (NHWC pixels, or a text model's token ids) in batches of
    _INFERENCE_BATCH, and which engine computed them. engine "auto": ONNX Runtime on a CPU when it
    is installed, its export reproduces the model, and the pass is long enough to repay its
    start (the export and its parity check, and the first time in a process importing onnx);
    else PyTorch. The pass's length comes from `seconds_per_example` (PyTorch's) or from timing
    the first batch, whose outputs are kept."""
    from hubel.serve.engine import choose_engine

    batches = [inputs[start : start + _INFERENCE_BATCH] for start in range(0, len(inputs), _INFERENCE_BATCH)]
    outputs: list[np.ndarray] = []
    note = None
    if engine == "auto":
        if seconds_per_example is None:
            started = time.perf_counter()
            outputs.append(network.predict(batches[0], batch_size=_INFERENCE_BATCH))
            seconds_per_example = (time.perf_counter() - started) / len(batches[0])
        rest = sum(len(batch) for batch in batches[len(outputs) :]) * seconds_per_example
        start_cost = _ONNX_START_SECONDS if "onnx" in sys.modules else _ONNX_FIRST_START_SECONDS
        if rest * (1 - 1 / _ONNX_SPEEDUP) <= start_cost:
            engine, note = "torch", "PyTorch (a pass this short does not repay ONNX Runtime's start)"
    runner = choose_engine(network, engine)
    for batch in batches[len(outputs) :]:
        outputs.append(runner(_engine_input(network, batch) if runner.name == "onnxruntime" else batch))
    return np.concatenate(outputs), note or runner.note


def _engine_input(network: Model, batch: Any) -> np.ndarray:
    """A batch as the exported graph takes it, through the model's own input checks (so a wrong
    shape gets predict's error): token ids for a text model, else float32 NHWC pixels."""
    array = np.asarray(batch)
    if array.shape[1:] == tuple(network.input_shape[1:]) and array.dtype.kind in "uif":
        # NumPy, not torch: torch's idle OpenMP threads would spin against ONNX Runtime's
        return array.astype(np.int64 if network._vectorizers[0] is not None else np.float32, copy=False)
    x = network._boundary_in(batch)[0]  # (N, T) ids, or (N, C, H, W) float: grayscale, channels first
    if network._vectorizers[0] is not None:
        return x.cpu().numpy().astype(np.int64, copy=False)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).float().cpu().numpy())


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
                    epochs=math.ceil(total / plan["steps_per_epoch"]))  # fmt: skip
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
) -> dict[str, Any]:
    """Time a few training steps and a few inference batches on a throwaway copy of the model (its
    weights, optimizer and the random state stay as they were), then size the run in steps: what
    is left of the budget, less the measured cost of validating each epoch and of the test pass,
    the saving and the report at the end, is spent training. The epochs are whole passes over the
    data but the last, which stops at the planned step. On several processes every one takes part
    in the timed steps (they include the processes' communication) and process 0's plan is used."""
    if budget <= 0:
        raise ConfigError(f"expected a positive time budget. Received: {budget}")
    global_batch = batch_size * processes
    if isinstance(train_data, ImageFolderDataset):
        batches = []
        for x, y in train_data:
            batches.append((x, y))
            if len(batches) == 8 * processes:
                break
        x_probe, y_probe = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
        train_data.set_epoch(0)
        validation_steps = math.ceil(len(validation) / processes) if validation is not None else 0
    else:
        x_all, y_all = train_data
        x_probe, y_probe = x_all[: global_batch * 8], y_all[: global_batch * 8]
        held_out = (
            len(validation[0]) if validation is not None else len(x_all) - int(len(x_all) * (1 - _VALIDATION_SPLIT))
        )
        validation_steps = math.ceil(held_out / (batch_size * processes))  # each process validates its part
    steps_per_epoch = _steps_per_epoch(train_data, batch_size, validation, processes)
    test_examples = len(test[0]) if isinstance(test, tuple) else len(getattr(test, "labels", test))
    random_state = torch.get_rng_state()
    probe = copy.deepcopy(network)
    distributed = processes > 1
    probe.fit(x_probe[:global_batch], y_probe[:global_batch], batch_size=batch_size, verbose=0,
              distributed=distributed)  # warm-up  # fmt: skip
    x_timed, y_timed = x_probe[: global_batch * 6], y_probe[: global_batch * 6]  # a rough figure: _Replan re-times
    timed_steps = math.ceil(len(x_timed) / global_batch)
    start = time.perf_counter()
    probe.fit(x_timed, y_timed, batch_size=batch_size, verbose=0, distributed=distributed)
    seconds_per_step = (time.perf_counter() - start) / timed_steps
    probe.trainer.use_precision(None)  # the test pass runs in float32, as the saved model predicts
    start = time.perf_counter()
    probe.predict(x_probe[:_INFERENCE_BATCH], batch_size=_INFERENCE_BATCH)
    seconds_per_example = (time.perf_counter() - start) / len(x_probe[:_INFERENCE_BATCH])  # PyTorch's
    torch.set_rng_state(random_state)
    validation_seconds = validation_steps * batch_size * seconds_per_example
    finish_seconds = test_examples * seconds_per_example + _REPORT_SECONDS  # one test pass feeds both
    after_probe = budget - (time.perf_counter() - started)
    # 2% held back: the test pass ran up to 1 s over its estimate from a 256-example probe; a budget
    # too small for the report still trains for half of it
    left = max(after_probe - finish_seconds - 0.02 * budget, budget / 2)
    total_steps, epochs = _steps_that_fit(left, seconds_per_step, validation_seconds, steps_per_epoch)
    fit_ends_after = time.perf_counter() - started + left  # seconds into the run
    return {"seconds": budget, "seconds_per_step": seconds_per_step, "timed_steps": timed_steps,
            "steps_per_epoch": steps_per_epoch, "epochs": epochs, "total_steps": total_steps,
            "validation_seconds_per_epoch": validation_seconds, "finish_seconds_planned": finish_seconds,
            "inference_seconds_per_example": seconds_per_example,
            "fit_ends_after": fit_ends_after}  # fmt: skip


def train(
    data: str,
    model: str | None = None,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    image_size: tuple[int, int] | None = None,
    augment: str | None = None,
    tta: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    budget: float | None = None,
    fine_tune: bool = False,
    nproc: int = 1,
    sync_batchnorm: bool = False,
    port: int | None = None,
    command: str | None = None,
    _launched_at: float | None = None,
) -> RunResult:
    """Train `model` (a zoo name or a spec file; a sensible default otherwise) on `data` (a
    built-in dataset or a folder of images) into a run directory; see the module docstring.

    epochs defaults to 5. Resuming, options left as None take the run's config.yaml; otherwise
    they take the zoo entry's recipe (the tutorials' own settings for their
    networks: Adam, batch 32; SGD with a one-cycle schedule for the residual networks).
    augment names augmentation layers to add ("flip,shift"; see layers.augment.augmentation).
    tta sets the model's test_time_augmentation: "flip" (predictions, validation and the test set
    average each image with its mirror image, for twice the inference), "none", or "auto": flip
    on CIFAR-10 and when the network trains with flips (--augment flip).
    precision is "auto" (bf16 autocast where the hardware runs it fast), "float32" or "bf16".
    budget (seconds) replaces epochs: a few timed steps measure the throughput, the number of
    epochs and a one-cycle schedule are sized to fit, and the best epoch's weights are kept.

    A pretrained backbone as the model (`hubel.applications.list_backbones()`, e.g. "mobilenet_v2")
    does transfer learning (see _train_transfer): epochs are the head's (default 20), and
    fine_tune=True then trains the backbone's top blocks too.

    nproc > 1 trains on that many processes of this machine (hubel.train.distributed.launch, on
    `port` or a free one); started by torchrun, the processes are torchrun's (leave nproc at 1).
    batch_size stays the run's batch, split evenly over the processes, so the training is the
    same, only spread out. Process 0 writes the run directory and returns the result.
    sync_batchnorm: batch statistics over the whole batch instead of each process's part."""
    started = time.perf_counter() - (time.time() - _launched_at if _launched_at else 0.0)  # a launch counts
    directory = Path(out) if out else Path("runs") / f"{Path(data).name}-{model or 'default'}"
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"expected --nproc to be a positive number of processes. Received: {nproc!r}")
    _check_run_directory(directory, resume)
    if precision not in _PRECISIONS:
        raise ConfigError(f"expected precision {', '.join(map(repr, _PRECISIONS))}. Received: {precision!r}")
    if tta not in ("auto", "flip", "none"):
        raise ConfigError(f"expected --tta 'auto', 'flip' or 'none'. Received: {tta!r}")
    if nproc > 1:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("this process is already one of torchrun's: drop --nproc (--nproc-per-node sets it).")
        given = locals()  # the arguments, as passed: each process runs train with them, on one process
        options = {name: given[name] for name in inspect.signature(train).parameters if name not in _LAUNCH_ONLY}
        options.update(command=command or " ".join(sys.argv), nproc=1, _launched_at=time.time())
        return launch(_train_process, nproc, options, port=port)
    world = init()
    if sync_batchnorm and world.size == 1:
        raise ConfigError("--sync-bn shares batch statistics between processes: use it with --nproc N or torchrun.")
    world.barrier()  # every process has checked the directory before process 0 writes to it
    one_cycle_peak: float | None = None
    if resume:
        if world.main:
            _forget_epochs_after_checkpoint(directory)
        world.barrier()
        saved = yaml.safe_load((directory / "config.yaml").read_text()) if (directory / "config.yaml").exists() else {}
        model = model or (saved.get("model") if saved.get("model") in ZOO else None)
        epochs, batch_size = epochs or saved.get("epochs"), batch_size or saved.get("batch_size")
        augment = augment if augment is not None else saved.get("augment")
        tta = tta if tta != "auto" else saved.get("tta", "auto")
        optimizer = optimizer or saved.get("optimizer")
        one_cycle_peak = saved.get("one_cycle_peak")
        if learning_rate is None and one_cycle_peak is None:
            learning_rate = saved.get("learning_rate")
    set_seed(seed)
    clear_session()  # layer names start from conv2d again, as in a fresh process
    text = _data_kind(data) == "text"
    name = model or _DEFAULT_MODEL.get(data, _DEFAULT_TEXT_MODEL if text else "snacks_convnet")
    if name in BACKBONES and world.size > 1:
        raise ConfigError(
            f"transfer learning from {name} runs in one process (its backbone's features are computed once and "
            f"cached): drop --nproc."
        )
    if name in BACKBONES:
        if tta == "flip":
            raise ConfigError(
                f"--tta flip is for networks trained here from scratch; {name}'s head trains on cached features of "
                f"the images as they are. Drop --tta."
            )
        if text:
            raise ConfigError(f"{name} is pretrained on photos; {data!r} holds text. Use a text model: ngram_bag.")
        if budget is not None or resume:
            raise ConfigError(
                f"--{'budget' if budget is not None else 'resume'} is for training from scratch; transfer learning "
                f"from {name} takes a minute or two and keeps its features in a cache: run it again without it."
            )
        if data in datasets.list_datasets():
            raise ConfigError(
                f"{name} is pretrained on ImageNet photos and learns from a folder of photos (ROOT/<class>/*.jpg); "
                f"for the built-in {data!r} use a zoo model such as fast_resnet (`hubel zoo`)."
            )
        shape = BACKBONES.get(name).input_shape
        loaded = _load_data(data, image_size or shape[:2], 32, seed)  # photos are decoded as RGB
        return _train_transfer(name, data, directory, loaded, epochs=epochs, fine_tune=fine_tune, augment=augment,
                               seed=seed, command=command, started=started)  # fmt: skip
    if fine_tune:
        raise ConfigError(f"--fine-tune is for pretrained backbones ({', '.join(BACKBONES.names())}); {name!r} is not.")
    epochs = epochs or 5
    recipe = ZOO.get(name).recipe if name in ZOO else Recipe()
    batch_size = batch_size or recipe.batch_size
    if batch_size % world.size:
        raise ConfigError(
            f"a batch of {batch_size} does not split evenly over {world.size} processes: give --batch-size a "
            f"multiple of {world.size}."
        )
    per_process = batch_size // world.size  # the batch is the run's, whatever the processes: same training
    if world.rank:
        world.barrier()  # process 0 decodes an image folder into its cache first; the others then read it
    loaded = _load_data(data, image_size, per_process, seed, verbose=world.main)
    if world.main:
        world.barrier()
    if loaded["kind"] == "text":
        if augment:
            raise ConfigError("--augment is for images; text models train on the words as they are.")
        if tta == "flip":
            raise ConfigError("--tta flip mirrors images; text models read the words as they are.")
        texts = loaded["train"][0]
        fitted = texts if loaded["validation"] is not None else texts[: int(len(texts) * (1 - _VALIDATION_SPLIT))]
        network, model_name = _text_model(name, fitted, len(loaded["class_names"])), name
        vectorizer = network.layers[0]  # the texts become ids once, here, not once per fit and evaluate
        loaded = {
            **loaded,
            "report_data": loaded["test"],  # the report shows and explains the texts themselves
            **{
                part: None if loaded[part] is None else (vectorizer(loaded[part][0]), loaded[part][1])
                for part in ("train", "validation", "test")
            },
        }
    else:
        if name in ZOO and ZOO.get(name).text is not None:
            raise ConfigError(
                f"{name!r} is a text model, and {data!r} holds images. Pick an image model (`hubel zoo`)."
            )
        network, model_name = _build_model(name, loaded["shape"], len(loaded["class_names"]), augment)
        network.test_time_augmentation = _test_time_augmentation(tta, network, data)  # validation uses it too
    binary = network.output_shape[-1] == 1
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"
    chosen, rate_chosen = _optimizer(recipe, optimizer, learning_rate)
    network.compile(optimizer=chosen, loss=loss, metrics=["accuracy"], mixed_precision=_PRECISIONS[precision])
    if world.main:
        directory.mkdir(parents=True, exist_ok=True)
    config = {
        "command": command or " ".join(sys.argv),
        "data": data, "model": model_name, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "optimizer_used": repr(chosen), "learning_rate": chosen.learning_rate,
        "augment": augment, "tta": tta, "test_time_augmentation": network.test_time_augmentation,
        "precision": network.trainer.precision, "seed": seed, "loss": loss,
        "class_names": loaded["class_names"], "input_shape": list(network.input_shape[1:]),
        "processes": world.size, "sync_batchnorm": sync_batchnorm,
        "versions": {"hubel": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }  # fmt: skip
    train_data = loaded["train"]
    callbacks: list[Callback] = []
    plan: dict[str, Any] = {}
    if budget is not None:
        if resume:
            raise ConfigError("--budget plans a new run; resume a budgeted run with --epochs.")
        plan = world.broadcast(  # process 0's plan holds for all
            _plan_budget(network, train_data, loaded["validation"], loaded["test"], per_process, budget, started,
                         world.size)
        )  # fmt: skip
        epochs = plan["epochs"]
        callbacks.append(
            EarlyStopping(monitor="val_accuracy", patience=_MAX_BUDGET_EPOCHS, restore_best_weights=True)
        )  # keeps the best epoch; the plan stops the run
        config.update({"epochs": epochs, "budget": plan})
    if budget is not None or one_cycle_peak is not None or recipe.one_cycle:
        steps_per_epoch = _steps_per_epoch(train_data, per_process, loaded["validation"], world.size)
        total_steps = plan["total_steps"] if plan else epochs * steps_per_epoch
        peak = one_cycle_peak or (chosen.learning_rate if rate_chosen else 2 * chosen.learning_rate)
        config["one_cycle_peak"] = peak
        chosen.schedule = OneCycle(peak, total_steps=total_steps)
        config["schedule"] = (
            f"one-cycle to {peak:g} over {total_steps} steps ({epochs} epochs of up to {steps_per_epoch})"
        )
    if plan:  # the planned steps, re-timed after a few; a deadline in case the machine slows down
        fit_ends_at = started + plan["fit_ends_after"]
        limit = TrainingBudget(
            steps=plan["total_steps"],
            seconds=max(1.0, fit_ends_at - time.perf_counter() - plan["validation_seconds_per_epoch"]),
        )
        callbacks += [limit, _Replan(limit, chosen.schedule, plan, fit_ends_at, world)]
    if not resume and world.main:
        (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    fit_options: dict[str, Any] = {
        "epochs": epochs, "batch_size": per_process, "checkpoint_dir": directory / "checkpoints", "resume": resume,
        "callbacks": [JSONLinesLogger(directory / "metrics.jsonl"), _LogFile(directory / "train.log"),
                      *callbacks],  # the loggers write in process 0 alone
        "distributed": world.size > 1, "sync_batchnorm": sync_batchnorm,
    }  # fmt: skip
    fit_started = time.perf_counter()
    if isinstance(train_data, ImageFolderDataset) or loaded["validation"] is not None:
        data_arguments = [train_data] if isinstance(train_data, ImageFolderDataset) else list(train_data)
        history = network.fit(*data_arguments, validation_data=loaded["validation"], **fit_options)
    else:
        history = network.fit(*train_data, validation_split=_VALIDATION_SPLIT, **fit_options)
    if world.size > 1:
        if not world.main:  # process 0 measures, reports and answers for the run
            return RunResult(directory, math.nan, math.nan, time.perf_counter() - started)
        torch.set_num_threads(cores())  # the others are done: process 0 finishes on every core
    notes = [
        f"Trained with {config['optimizer_used']}, batch {batch_size}, in {config['precision']}"
        f"{' autocast (the test set is measured in float32)' if config['precision'] != 'float32' else ''}; "
        f"augmentation: {augment or 'none'}"
        f"{'; predictions average each image with its mirror image' if network.test_time_augmentation else ''}"
        f"{f'; on {world.size} processes of {per_process} examples each' if world.size > 1 else ''}."
    ]
    if plan:
        plan["steps_taken"], plan["stopped_by"] = limit.taken, limit.stopped_by
        best = max(history.history.get("val_accuracy", [0.0]))
        per_step = plan.get("seconds_per_step_in_training", plan["seconds_per_step"])
        notes.append(
            f"Time budget {budget:.0f} s: {per_step * 1000:.1f} ms per training step, so {plan['total_steps']} steps "
            f"({plan['steps_taken']} taken) in {len(history.epoch)} epoch(s) of up "
            f"to {plan['steps_per_epoch']} with a one-cycle schedule, after validation, the test pass and the report "
            f"were set aside; the best epoch (validation accuracy {best:.4f}) was kept."
        )
        plan["fit_seconds"] = history.params.get("seconds")
        plan["before_fit_seconds"] = fit_started - started
    extra: dict[str, Any] = {"world_size": world.size}
    if plan:
        extra["budget"] = {**plan, "finish_started": time.perf_counter() - started}
    return _finish_run(directory, network, history, loaded, data, model_name, seed, notes, started, extra)


_LAUNCH_ONLY = ("nproc", "port", "_launched_at")  # train's arguments that its launched processes do not take


def _train_process(options: dict[str, Any]) -> RunResult:
    """One process of `train(..., nproc=N)`, started by hubel.train.distributed.launch."""
    return train(**options)


def _check_run_directory(directory: Path, resume: bool) -> None:
    if directory.exists() and any(directory.iterdir()) and not resume:
        raise ConfigError(f"{directory} exists already: resume it with --resume, or pick another name with --out.")
    if resume and not checkpoint_exists(directory / "checkpoints" / "last.ckpt"):
        raise ConfigError(f"{directory} has no checkpoint to resume from. Train without --resume.")


def _finish_run(
    directory: Path,
    network: Model,
    history: Any,
    loaded: dict[str, Any],
    data: str,
    model_name: str,
    seed: int,
    notes: list[str],
    started: float,
    extra: dict[str, Any],
) -> RunResult:
    """Save the model, measure the test set in float32, write the report and result.json."""
    takes = "raw text (TextVectorization inside)" if loaded.get("kind") == "text" else "raw 0-255 pixels"
    metadata = {"class_names": loaded["class_names"], "preprocessing": f"{takes} (preprocessing inside)",
                "data": data, "history": history.history}  # fmt: skip
    if len(history.epoch) <= STEP_CURVES_UP_TO:  # the report draws a short run per step: keep what it draws
        metadata["history_steps"] = history.steps
    network.save(directory / "model.hubel", metadata=metadata)
    network.trainer.use_precision(None)  # the test set is measured in float32, as the saved model predicts
    test = loaded["test"]
    # one pass over the test set, on the faster engine, gives both the figures and what the report draws
    test_started = time.perf_counter()
    from hubel.inspect.confusion import examples

    inputs, targets = test if isinstance(test, tuple) else examples(test)
    speed = extra.get("budget", {}).get("inference_seconds_per_example")
    outputs, engine = _test_outputs(network, inputs, seconds_per_example=speed)
    logs = network.trainer.score(outputs, targets)
    loss_value, accuracy = logs["loss"], logs["accuracy"]
    from hubel.inspect.report import report

    report_started = time.perf_counter()
    report(network, history, loaded.get("report_data", test), path=directory / "report.html",
           class_names=loaded["class_names"], title=f"{model_name} on {Path(data).name}", seed=seed,
           notes=notes, max_examples=100_000, outputs=outputs)  # fmt: skip
    seconds = time.perf_counter() - started
    extra["test_engine"] = engine
    if "budget" in extra:
        extra["budget"].update(test_pass_seconds=report_started - test_started,
                               report_seconds=time.perf_counter() - report_started)  # fmt: skip
    result = {"test_accuracy": float(accuracy), "test_loss": float(loss_value), "seconds": seconds, "model": model_name,
              "data": data, "epochs_trained": len(history.epoch), **extra}  # fmt: skip
    if "budget" in result:  # what each phase cost, beside what the plan set aside for it
        result["budget"]["spent_seconds"] = seconds
        result["budget"]["finish_seconds"] = seconds - result["budget"].pop("finish_started")
    (directory / "result.json").write_text(json.dumps(result, indent=2))
    print(
        f"Test accuracy {accuracy:.4f}, loss {loss_value:.4f} ({seconds:.0f} s). "
        f"Model: {directory / 'model.hubel'}  Report: {directory / 'report.html'}"
    )
    return RunResult(directory, float(accuracy), float(loss_value), seconds)


def _train_transfer(
    backbone: str,
    data: str,
    directory: Path,
    loaded: dict[str, Any],
    *,
    epochs: int | None,
    fine_tune: bool,
    augment: str | None,
    seed: int,
    command: str | None,
    started: float,
) -> RunResult:
    """Transfer learning from a pretrained backbone: features once, a head on them, then (with
    fine_tune) the top blocks trained on the images at a low rate (benchmarks/transfer.py)."""
    from hubel.models.applications.transfer import transfer_learn

    head_epochs = epochs or _TRANSFER_HEAD_EPOCHS
    fine_tune_epochs = _TRANSFER_FINE_TUNE_EPOCHS if fine_tune else 0
    total = head_epochs + fine_tune_epochs
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "command": command or " ".join(sys.argv), "data": data, "model": backbone, "epochs": total,
        "head_epochs": head_epochs, "fine_tune": fine_tune, "fine_tune_epochs": fine_tune_epochs,
        "fine_tune_blocks": _TRANSFER_FINE_TUNE_BLOCKS if fine_tune else 0, "augment": augment, "seed": seed,
        "class_names": loaded["class_names"], "input_shape": list(loaded["shape"]),
        "versions": {"hubel": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }  # fmt: skip
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    callbacks = [JSONLinesLogger(directory / "metrics.jsonl"), _LogFile(directory / "train.log", total)]
    result = transfer_learn(
        backbone, loaded["train"], loaded["validation"], len(loaded["class_names"]), input_shape=loaded["shape"],
        head_epochs=head_epochs, fine_tune_blocks=config["fine_tune_blocks"], fine_tune_epochs=fine_tune_epochs,
        augmentation=augmentation(augment) if augment else None, callbacks=callbacks,
    )  # fmt: skip
    rate = result.feature_images / result.feature_seconds if result.feature_images else None
    computed = (
        f"computed for {result.feature_images} in {result.feature_seconds:.1f} s ({rate:.0f} img/s)" if rate else ""
    )
    cached = result.images - result.feature_images
    notes = [
        f"Transfer learning from {backbone} (ImageNet weights, frozen): features of {result.images} images, "
        f"{computed}{', ' if computed and cached else ''}{f'{cached} read from the feature cache' if cached else ''}; "
        f"then a dropout + dense head trained on them for {head_epochs} epochs with Adam 1e-3."
    ]
    if fine_tune_epochs:
        notes.append(
            f"Fine-tuned the top {config['fine_tune_blocks']} blocks ({len(result.fine_tuned_layers)} layers; batch "
            f"normalization kept in inference mode) for {fine_tune_epochs} epochs with Adam 1e-5"
            f"{f', augmentation {augment}' if augment else ''}."
        )
    extra = {"feature_images_computed": result.feature_images, "feature_seconds": result.feature_seconds,
             "feature_images_per_second": rate}  # fmt: skip
    return _finish_run(directory, result.model, result.history, loaded, data, backbone, seed, notes, started, extra)


def predict_files(model: Model | str | Path, paths: list[str | Path], top: int = 3) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for image files, decoded exactly as image folders are for
    training (size and colour mode from the model's input shape). `model` is a model, a .hubel
    file, a run directory, or a pretrained backbone's name ("mobilenet_v2": its ImageNet classes).
    For a text model, each item is a .txt file or the text itself."""
    from hubel.data.images import DecodeOptions, UnreadableImage, decode_image

    network = _model_for_prediction(model)
    names = network.metadata.get("class_names") or []
    if getattr(network, "_vectorizers", [None])[0] is not None:
        return _predict_texts(network, [str(path) for path in paths], names, top)
    height, width, channels = network.input_shape[1:]
    options = DecodeOptions((height, width), "grayscale" if channels == 1 else "rgb")
    results = []
    for path in paths:
        try:
            pixels = decode_image(Path(path), options)
        except UnreadableImage as reason:
            raise DataError(f"{path}: {reason}. Pass an image file Pillow can read.") from None
        results.append({"file": str(path), "top": top_classes(network.predict(pixels[None])[0], names, top)})
    return results


def _predict_texts(network: Model, items: list[str], names: list[str], top: int) -> list[dict[str, Any]]:
    texts, files = [], []
    for item in items:
        path = Path(item)
        is_file = path.suffix.lower() == ".txt" and path.is_file()
        text, why = read_text_file(path) if is_file else (item, None)
        if text is None or not text.strip():
            where = f"{item}: " if is_file else ""
            raise DataError(f"{where}{why or 'empty text'}: give some text (in quotes) or a .txt file that holds text.")
        texts.append(text)
        files.append(str(path) if is_file else None)
    scores = network.predict(texts)
    return [
        {"file": file, "text": text if len(text) <= 200 else text[:197] + "...", "top": top_classes(row, names, top)}
        for file, text, row in zip(files, texts, scores)
    ]


def _model_for_prediction(model: Model | str | Path) -> Model:
    from hubel.models.io import load_model

    if isinstance(model, Model):
        return model
    if isinstance(model, str) and model in BACKBONES and not Path(model).exists():
        from hubel.models.applications.transfer import pretrained_classifier

        return pretrained_classifier(model)
    path = _model_path(model)
    if not path.exists() and isinstance(model, str) and "/" not in model and not model.endswith(".hubel"):
        raise ConfigError(
            f"{model!r} is neither a model file, a run directory nor a pretrained backbone "
            f"({', '.join(BACKBONES.names())})."
        )
    return load_model(path)


def _model_path(model: str | Path) -> Path:
    path = Path(model)
    return path / "model.hubel" if path.is_dir() else path


def _evaluation_data(data: str, image_size: tuple[int, int], batch_size: int) -> tuple[Any, list[str]]:
    """What evaluate measures: a built-in dataset's test split; a folder's test/, else its
    val/ (validation/), else — a flat folder of class folders — every image in it."""
    if data in datasets.list_datasets():
        loaded = _load_data(data, image_size, batch_size, seed=0)
        return loaded["test"], loaded["class_names"]
    if not Path(data).is_dir():
        raise DataError(f"{data!r} is neither a built-in dataset ({', '.join(datasets.list_datasets())}) nor a folder.")
    if _holds_text(Path(data)):
        for subset in ("test", "validation", None):
            try:
                texts = text_folder(data, subset=subset, verbose=False)
            except ConfigError:
                continue
            return texts.numpy(), texts.class_names
    for subset in ("test", "validation", None):
        try:
            folder = image_folder(data, image_size, batch_size, subset=subset, shuffle=False, verbose=False)
        except ConfigError:
            continue
        return folder, folder.class_names
    raise DataError(f"{data}: no images to evaluate on.")


def evaluate(
    model: str | Path, data: str, out: str | Path | None = None, batch_size: int = 32, engine: str = "auto"
) -> dict[str, Any]:
    """Loss, accuracy and per-class metrics of a saved model (or run directory) on `data`: a
    built-in dataset's test split, or a folder (its test/, else val/, else all of it: a flat
    folder of class folders is the test set); the confusion matrix is saved as a PNG beside the
    model unless `out` names another path. `engine`: "auto" (ONNX Runtime on a CPU when it is
    installed and reproduces the model, else PyTorch), "onnxruntime" or "torch"."""
    from hubel.inspect.confusion import classification_report, confusion_matrix, examples, plot_confusion_matrix
    from hubel.models.io import load_model

    path = _model_path(model)
    network = load_model(path)
    text_model = network._vectorizers[0] is not None
    image_size = None if text_model else tuple(network.input_shape[1:3])
    test, folder_names = _evaluation_data(data, image_size, batch_size)  # type: ignore[arg-type]
    if text_model != is_text(test[0] if isinstance(test, tuple) else next(iter(test))[0]):
        kinds = ("text", "images") if text_model else ("images", "text")
        raise DataError(f"{path} is a model for {kinds[0]}, and {data} holds {kinds[1]}. Evaluate it on {kinds[0]}.")
    names = network.metadata.get("class_names") or folder_names
    if sorted(names) != sorted(folder_names):
        raise DataError(
            f"{data} has the classes {folder_names}, but the model was trained on {names}. Evaluate on a folder with "
            f"the same class folders."
        )
    inputs, labels = examples(test)
    started = time.perf_counter()
    if network._vectorizers[0] is not None:
        inputs = network.encode_inputs(inputs)
    probabilities, used = _test_outputs(network, inputs, engine)
    seconds = time.perf_counter() - started  # the engine's start (an export for ONNX Runtime) and the pass
    report = classification_report(labels, probabilities, names)
    counts = confusion_matrix(labels, probabilities, len(names))
    figure_path = Path(out) if out else path.with_name(f"{path.stem}-confusion.png")
    plot_confusion_matrix(counts, names, path=figure_path)
    chosen = (
        probabilities[np.arange(len(labels)), labels]
        if probabilities.shape[1] > 1
        else np.where(labels == 1, probabilities[:, 0], 1 - probabilities[:, 0])
    )
    loss = float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean())
    return {
        "loss": loss,
        "accuracy": report["accuracy"],
        "examples": len(labels),
        "engine": used,
        "seconds": seconds,
        "classes": report["classes"],
        "confusion_png": str(figure_path),
    }


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One row per run directory under root: data, model, epochs, best validation accuracy, test
    accuracy and time (from config.yaml, metrics.jsonl and result.json)."""
    rows = []
    for directory in sorted(Path(root).glob("*/")):
        config_path = directory / "config.yaml"
        if not config_path.exists():
            continue
        config = yaml.safe_load(config_path.read_text()) or {}
        metrics = (
            [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
            if (directory / "metrics.jsonl").exists()
            else []
        )
        result = json.loads((directory / "result.json").read_text()) if (directory / "result.json").exists() else {}
        accuracies = [line["val_accuracy"] for line in metrics if "val_accuracy" in line]
        rows.append({
            "run": directory.name, "data": config.get("data"), "model": config.get("model"), "epochs": len(metrics),
            "best_val_accuracy": max(accuracies) if accuracies else None,
            "test_accuracy": result.get("test_accuracy"), "seconds": result.get("seconds"),
            "state": "finished" if result else "unfinished (hubel train --resume continues it)",
        })  # fmt: skip
    return rows


def compare(
    data: str,
    models: list[str],
    *,
    epochs: int = 3,
    budget: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Train each model on the same data, split, seed and epochs (or the same time budget
    each), a run directory each under out/, then write comparison.md and validation_curves.png
    there; returns the table rows. batch_size None: each model's recipe."""
    from hubel.inspect.plots import plot_history
    from hubel.models.io import load_model
    from hubel.models.summary import summarize
    from hubel.train.history import History

    if len(models) < 2:
        raise ConfigError("compare needs at least two models: --model A --model B.")
    root = Path(out) if out else Path("runs") / f"compare-{Path(data).name}"
    rows, histories = [], []
    for name in models:
        result = train(
            data, name, epochs=epochs, budget=budget, batch_size=batch_size, seed=seed, out=root / Path(name).stem
        )
        network = load_model(result.model_path)
        images = _load_data(data, tuple(network.input_shape[1:3]), 256, seed)["test"]
        sample = images[0][:256] if isinstance(images, tuple) else next(iter(images))[0]
        start = time.perf_counter()
        network.predict(sample)
        milliseconds = (time.perf_counter() - start) * 1000 / len(sample)
        summary = summarize(network)
        rows.append({
            "model": name, "test_accuracy": result.test_accuracy, "params": summary.total_params, "macs": summary.macs,
            "train_seconds": result.seconds, "inference_ms_per_image": milliseconds,
            "model_file_mb": result.model_path.stat().st_size / 2**20,
        })  # fmt: skip
        logged = network.metadata.get("history", {})
        histories.append(History(logged, list(range(len(logged.get("loss", []))))))
    each = f"a {budget:.0f} s budget" if budget is not None else f"{epochs} epochs"
    plot_history(histories, metrics=("accuracy",), labels=models, path=root / "validation_curves.png",
                 title=f"{data}: {each} each, seed {seed}")  # fmt: skip
    lines = [
        f"# {data}: {', '.join(models)}",
        "",
        f"Same data split, seed {seed} and {each} for every model.",
        "",
        "| model | test accuracy | params | MACs | train time | inference ms/image | model file MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['model']} | {r['test_accuracy']:.4f} | {r['params']:,} | {r['macs']:,} | "
            f"{r['train_seconds']:.0f} s | {r['inference_ms_per_image']:.3f} | {r['model_file_mb']:.2f} |"
            for r in rows
        ),
        "",
        "![validation curves](validation_curves.png)",
    ]
    (root / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:-2]))
    print(f"Table: {root / 'comparison.md'}  Curves: {root / 'validation_curves.png'}")
    return rows


def report_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write (again) the HTML report of a run directory, from its model file, its config and
    its test data."""
    from hubel.inspect.report import report
    from hubel.models.io import load_model
    from hubel.train.history import History

    directory = Path(run)
    config_path = directory / "config.yaml"
    if not config_path.exists() or not (directory / "model.hubel").exists():
        raise ConfigError(f"{directory}: not a finished run directory (config.yaml and model.hubel are needed).")
    config = yaml.safe_load(config_path.read_text()) or {}
    network = load_model(directory / "model.hubel")
    history_data = network.metadata.get("history") or {}
    epochs = list(range(len(next(iter(history_data.values()), []))))
    history = History(history_data, epochs, steps=network.metadata.get("history_steps"))
    loaded = _load_data(config["data"], tuple(network.input_shape[1:3]), config.get("batch_size", 32), 0)
    path = Path(out) if out else directory / "report.html"
    return report(network, history, loaded["test"], path=path, class_names=network.metadata.get("class_names"),
                  title=f"{config.get('model')} on {Path(config['data']).name}", seed=config.get("seed"))  # fmt: skip


def export_model(
    model: str | Path, out: str | Path | None = None, format: str = "onnx", input_dtype: str = "float32"
) -> Any:
    """Export a .hubel file or a run directory (hubel export): ONNX, checked on real inputs (a run's
    test data, the first 64 examples; random inputs for a bare model file) before it is written
    (default: beside the model, model.onnx)."""
    from hubel.export.onnx import export_onnx
    from hubel.models.io import load_model

    if format != "onnx":
        raise ConfigError(f"hubel exports --format onnx. Received: {format!r}")
    path = _model_path(model)
    network = load_model(path)
    sample = None
    config_path = path.parent / "config.yaml"
    if config_path.exists():
        config = yaml.safe_load(config_path.read_text()) or {}
        text_model = network._vectorizers[0] is not None
        size = None if text_model else tuple(network.input_shape[1:3])
        test = _load_data(config["data"], size, 64, 0)["test"]
        sample = test[0][:64] if isinstance(test, tuple) else next(iter(test))[0]
    return export_onnx(network, Path(out) if out else path.with_suffix(".onnx"), sample, input_dtype=input_dtype)
