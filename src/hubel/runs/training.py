"""`hubel train`: a run from data to a run directory, from scratch (with a budget, on several
processes, resumed) or by transfer learning from a pretrained backbone."""

from __future__ import annotations

import inspect
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from hubel import __version__
from hubel.data import datasets
from hubel.data.folders import ImageFolderDataset
from hubel.errors import ConfigError
from hubel.layers.augment import augmentation
from hubel.layers.base import clear_session
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model
from hubel.models.zoo import ZOO, Recipe
from hubel.runs.budget import (
    _MAX_BUDGET_EPOCHS,
    _TRANSFER_SIDES,
    _kept,
    _plan_budget,
    _plan_line,
    _plan_transfer,
    _Replan,
    _steps_per_epoch,
    _transfer_plan_line,
)
from hubel.runs.inference import _test_outputs
from hubel.runs.setup import (
    _DEFAULT_MODEL,
    _DEFAULT_TEXT_MODEL,
    _FOLDER_FROM_SCRATCH,
    _LONG_RUN_FROM_EPOCHS,
    _LONG_RUN_MODELS,
    _PRECISIONS,
    _adapt,
    _augmentation,
    _build_model,
    _data_kind,
    _folder_model,
    _load_data,
    _optimizer,
    _test_time_augmentation,
    _text_model,
)
from hubel.train.callbacks import Callback, EarlyStopping, FreezeWeights, JSONLinesLogger, Lookahead, TrainingBudget
from hubel.train.checkpoint import checkpoint_exists
from hubel.train.distributed import World, cores, init, launch
from hubel.train.history import STEP_CURVES_UP_TO
from hubel.train.losses import LOSSES
from hubel.train.progress import format_logs
from hubel.train.schedules import OneCycle
from hubel.train.trainer import set_seed


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


# Transfer learning, chosen on the cats-vs-dogs photos (benchmarks/transfer.py)
_TRANSFER_HEAD_EPOCHS = 20
_TRANSFER_FINE_TUNE_BLOCKS = 3
_TRANSFER_FINE_TUNE_EPOCHS = 3


def train(
    data: str,
    model: str | None = None,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    optimizer: str | None = None,
    learning_rate: float | None = None,
    image_size: tuple[int, int] | None = None,
    augment: str | None = "auto",
    tta: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    validation_split: float | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    budget: float | None = None,
    fine_tune: bool = False,
    nproc: int = 1,
    sync_batchnorm: bool = False,
    port: int | None = None,
    command: str | None = None,
    started_at: float | None = None,
) -> RunResult:
    """Train `model` (a zoo name or a spec file; a sensible default otherwise) on `data` (a
    built-in dataset or a folder of images) into a run directory; see the module docstring.

    epochs defaults to 5. Resuming, options left as None take the run's config.yaml; otherwise
    they take the zoo entry's recipe (the tutorials' own settings for their
    networks: Adam, batch 32; SGD with a one-cycle schedule for the residual networks).
    augment names augmentation layers to add ("flip,shift"; see layers.augment.augmentation);
    "auto" adds flips and shifts to CIFAR-10 in runs of 10 epochs or more (for a budget, as its plan
    has it: the network is then rebuilt with them and the plan made again), None or "none" nothing.
    tta sets the model's test_time_augmentation: "flip" (predictions, validation and the test set
    average each image with its mirror image, for twice the inference), "none", or "auto": flip
    on CIFAR-10 and when the network trains with flips (--augment flip).
    precision is "auto" (bf16 autocast where the hardware runs it fast), "float32" or "bf16".
    validation_split: the part of the training data held out to validate each epoch (default: the
    last 0.1 of a built-in dataset's arrays; a folder's val/ folder, else a stratified 0.2); 0
    trains on all of it and validates on nothing (a folder then needs a test/ folder).
    budget (seconds) replaces epochs: a few timed steps measure the throughput, the number of
    epochs and a one-cycle schedule are sized to fit, and the best epoch's weights are kept (the
    last epoch's without validation).
    The budget, and the run's seconds, count from started_at (a time.time(); default: the call),
    which the `hubel` command sets to its process's start, so that its imports count too.

    A pretrained backbone as the model (`hubel.applications.list_backbones()`, e.g. "mobilenet_v2")
    does transfer learning (see _train_transfer): epochs are the head's (default 20), and
    fine_tune=True then trains the backbone's top blocks too.

    nproc > 1 trains on that many processes of this machine (hubel.train.distributed.launch, on
    `port` or a free one); started by torchrun, the processes are torchrun's (leave nproc at 1).
    batch_size stays the run's batch, split evenly over the processes, so the training is the
    same, only spread out. Process 0 writes the run directory and returns the result.
    sync_batchnorm: batch statistics over the whole batch instead of each process's part."""
    started = time.perf_counter() - (time.time() - started_at if started_at is not None else 0.0)
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
        options.update(
            command=command or " ".join(sys.argv), nproc=1, started_at=time.time() if started_at is None else started_at
        )
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
        model = model or (saved.get("model") if saved.get("model") in ZOO or saved.get("model") in BACKBONES else None)
        epochs, batch_size = epochs or saved.get("epochs"), batch_size or saved.get("batch_size")
        augment = saved.get("augment") if augment == "auto" else augment  # as the run went on
        tta = tta if tta != "auto" else saved.get("tta", "auto")
        optimizer = optimizer or saved.get("optimizer")
        validation_split = validation_split if validation_split is not None else saved.get("validation_split")
        one_cycle_peak = saved.get("one_cycle_peak")
        if learning_rate is None and one_cycle_peak is None:
            learning_rate = saved.get("learning_rate")
    set_seed(seed)
    clear_session()  # layer names start from conv2d again, as in a fresh process
    text = _data_kind(data) == "text"
    # the options that only training from scratch takes, and whether each was given
    scratch = {"--resume": resume, "--nproc": world.size > 1,
               "--tta flip": tta == "flip", "--batch-size": batch_size is not None,
               "--optimizer": optimizer is not None, "--lr": learning_rate is not None,
               "--augment": augment not in ("auto", "none", None) and not fine_tune}  # fmt: skip
    if model or text or data in datasets.list_datasets() or not Path(data).is_dir():  # (no such folder: said below)
        name = model or _DEFAULT_MODEL.get(data, _DEFAULT_TEXT_MODEL if text else _FOLDER_FROM_SCRATCH)
    else:  # a folder of images: transfer learning, unless one of those options asks for training from scratch
        name, line = _folder_model(scratch)
        if world.main:
            print(line)
    long_runs = () if model or budget is None or resume else _LONG_RUN_MODELS.get(data, ())
    name = long_runs[0] if long_runs else name  # planned first, below: kept if the budget buys it enough epochs
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
        if resume:
            raise ConfigError(
                f"--resume is for training from scratch; transfer learning from {name} takes a minute or two and "
                f"keeps its features in a cache: run it again without --resume, into a new --out."
            )
        if budget is not None and fine_tune:
            raise ConfigError(
                "--budget plans transfer learning's feature pass and head, not --fine-tune's epochs on the images: "
                "drop one of them."
            )
        unused = [flag for flag in ("--batch-size", "--optimizer", "--lr") if scratch[flag]]
        if unused:
            raise ConfigError(
                f"{unused[0]} is for training from scratch; transfer learning from {name} trains its head with Adam "
                f"at 1e-3 in batches of 32. Drop {unused[0]}, or name a zoo model to train from scratch (`hubel zoo`)."
            )
        if data in datasets.list_datasets():
            raise ConfigError(
                f"{name} is pretrained on ImageNet photos and learns from a folder of photos (ROOT/<class>/*.jpg); "
                f"for the built-in {data!r} use a zoo model such as fast_resnet (`hubel zoo`)."
            )
        own = BACKBONES.get(name).input_shape[:2]
        loading_started = time.perf_counter()
        loaded = _load_data(data, image_size or own, 32, seed, validation_split=validation_split)  # as RGB
        loading_seconds = time.perf_counter() - loading_started
        plan = None
        if budget is not None:  # the backbone's own size, or a smaller one that fits; a size given stays
            sides = [side for side in _TRANSFER_SIDES if side < min(own)]
            sizes = [tuple(image_size)] if image_size else [tuple(own), *((side, side) for side in sides)]
            plan = _plan_transfer(name, loaded, budget, started, sizes, loading_seconds)
            print(_transfer_plan_line(plan))
            if tuple(plan["image_size"]) != tuple(loaded["shape"][:2]):
                loaded = _load_data(data, tuple(plan["image_size"]), 32, seed, verbose=False,
                                    validation_split=validation_split)  # fmt: skip
        augment = _augmentation(augment, data, 0)  # the head trains on cached features: auto adds none
        return _train_transfer(name, data, directory, loaded, epochs=epochs, fine_tune=fine_tune, augment=augment,
                               seed=seed, validation_split=validation_split, command=command,
                               started=started, plan=plan)  # fmt: skip
    if fine_tune:
        raise ConfigError(f"--fine-tune is for pretrained backbones ({', '.join(BACKBONES.names())}); {name!r} is not.")
    epochs = epochs or 5
    recipe = ZOO.get(name).recipe if name in ZOO else Recipe()
    given_batch_size, batch_size = batch_size, batch_size or recipe.batch_size
    per_process = _per_process(batch_size, world)
    if world.rank:
        world.barrier()  # process 0 decodes an image folder into its cache first; the others then read it
    loaded = _load_data(data, image_size, per_process, seed, verbose=world.main, validation_split=validation_split)
    holdout = loaded["holdout"]  # of the training arrays, held out by fit for validation
    validated = bool(holdout) or loaded["validation"] is not None
    if world.main:
        world.barrier()
    augment_after_plan = False
    if loaded["kind"] == "text":
        if _augmentation(augment, data, epochs):
            raise ConfigError("--augment is for images; text models train on the words as they are.")
        augment = None
        if tta == "flip":
            raise ConfigError("--tta flip mirrors images; text models read the words as they are.")
        texts = loaded["train"][0]
        fitted = texts[: _kept(len(texts), holdout)]
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
        augment_after_plan = augment == "auto" and budget is not None  # on the planned epochs, below
        augment = None if augment_after_plan else _augmentation(augment, data, epochs, recipe.augment_from_epochs)
        network, model_name = _image_network(name, loaded, augment, tta, data)
    binary = network.output_shape[-1] == 1
    loss = "binary_crossentropy" if binary else "sparse_categorical_crossentropy"

    def compiled(network: Any) -> tuple[Any, bool]:  # the optimizer (a fresh one) and whether its rate was chosen
        chosen, rate_chosen = _optimizer(recipe, optimizer, learning_rate)
        smoothing = recipe.label_smoothing
        scored = LOSSES.get(loss)(label_smoothing=smoothing) if smoothing else loss
        network.compile(optimizer=chosen, loss=scored, metrics=["accuracy"], mixed_precision=_PRECISIONS[precision])
        return chosen, rate_chosen

    chosen, rate_chosen = compiled(network)
    train_data = loaded["train"]
    callbacks: list[Callback] = []
    plan: dict[str, Any] = {}
    if budget is not None:
        if resume:
            raise ConfigError("--budget plans a new run; resume a budgeted run with --epochs.")

        def timed(
            network: Any, scaled_from: dict[str, Any] | None = None, enough_epochs: float | None = None
        ) -> dict[str, Any]:
            # per_process is read now: a fallback network brings its own batch; process 0's plan holds for all
            validation, test = loaded["validation"], loaded["test"]
            plan = _plan_budget(network, train_data, validation, test, per_process, budget, started, world.size,
                                holdout, scaled_from, enough_epochs)  # fmt: skip
            return world.broadcast(plan)

        def planned(
            name: str, augment: str | None, enough_epochs: float | None = None
        ) -> tuple[Any, str, Any, bool, dict[str, Any]]:
            """A fresh network (its layer names as a run asking for it would get), compiled and timed."""
            clear_session()
            network, model_name = _image_network(name, loaded, augment, tta, data)
            chosen, rate_chosen = compiled(network)
            return network, model_name, chosen, rate_chosen, timed(network, enough_epochs=enough_epochs)

        def short_run_batch(recipe: Recipe) -> int | None:  # a --batch-size given holds
            return None if given_batch_size else recipe.short_run_batch_size

        def enough(recipe: Recipe) -> float:  # the fewest epochs a long-run network is kept for, at either batch
            kept_from = recipe.short_run_from_epochs if short_run_batch(recipe) else _LONG_RUN_FROM_EPOCHS
            return min(_LONG_RUN_FROM_EPOCHS, kept_from)

        # each long-run network in turn: kept at its own batch from _LONG_RUN_FROM_EPOCHS, at its
        # short-run batch from its recipe's short_run_from_epochs; after them, the default network
        plan = timed(network, enough_epochs=enough(recipe) if long_runs else None)
        reasons: list[str] = []  # for the console: why each network planned before the one kept was dropped
        shortened = False
        for position in range(len(long_runs)):
            # the epochs the plan buys, its last one's part as a part: a plan of 2.3 epochs has 3 to count,
            # and airbench_small at 1,024 for those 2.3 reached 85.9% on CIFAR-10, at 512 for 1.95 87.9%
            bought = plan["total_steps"] / plan["steps_per_epoch"]
            amount = f"at most {bought:.1f}" if plan.get("at_most") else f"{bought:.1f}"
            needs = f"{_LONG_RUN_FROM_EPOCHS} epochs or more"
            if bought >= _LONG_RUN_FROM_EPOCHS:
                reasons.append(f"{name} takes {needs}; the budget buys it {amount}")
                break
            short_batch = short_run_batch(recipe)
            if short_batch and bought >= recipe.short_run_from_epochs:  # the same network and rate, more steps
                reasons.append(f"{name} takes {needs} at batch {batch_size}; the budget would buy it {amount}")
                batch_size, shortened = short_batch, True
                per_process = _per_process(batch_size, world)
                plan = timed(network, scaled_from=plan)  # its probe's times, scaled
                break
            if short_batch:  # too short for its short-run batch too
                needs += f" at batch {batch_size}, {recipe.short_run_from_epochs:g} at batch {short_batch}"
            reasons.append(f"{name} takes {needs}; the budget would buy it {amount}")
            following = long_runs[position + 1 :]
            name = following[0] if following else _DEFAULT_MODEL[data]
            recipe = ZOO.get(name).recipe
            batch_size = given_batch_size or recipe.batch_size
            per_process = _per_process(batch_size, world)
            network, model_name, chosen, rate_chosen, plan = planned(
                name, augment, enough(recipe) if following else None
            )
        if augment_after_plan and (augment := _augmentation("auto", data, plan["epochs"], recipe.augment_from_epochs)):
            network, model_name, chosen, rate_chosen, plan = planned(name, augment)  # augmentation's cost timed too
        if world.main:
            chose = (
                f" Augmentation (auto, for {plan['epochs']} epochs): {augment}."
                if augment_after_plan and augment
                else ""
            )
            if reasons:
                at_batch = f" at batch {batch_size}" if shortened else ""
                chose += f" Model: {name}{at_batch} ({'. '.join(reasons)})."
            print(_plan_line(plan) + chose)
        epochs = plan["epochs"]
        if validated:
            callbacks.append(
                EarlyStopping(monitor="val_accuracy", patience=_MAX_BUDGET_EPOCHS, restore_best_weights=True)
            )  # keeps the best epoch; the plan stops the run
    if world.main:
        directory.mkdir(parents=True, exist_ok=True)
    lookahead = Lookahead() if recipe.lookahead else None  # the recipe is settled: the plan may have changed it
    # held weights lose their gradients, which DistributedDataParallel does not allow: there they train on
    held = [FreezeWeights(weights, epochs) for weights, epochs in recipe.freeze_after_epochs.items() if world.size == 1]
    config = {
        "command": command or " ".join(sys.argv),
        "data": data, "model": model_name, "epochs": epochs, "batch_size": batch_size,
        "optimizer": optimizer, "optimizer_used": repr(chosen), "learning_rate": chosen.learning_rate,
        "augment": augment, "tta": tta, "test_time_augmentation": network.test_time_augmentation,
        "precision": network.trainer.precision, "seed": seed, "validation_split": validation_split, "loss": loss,
        **({"label_smoothing": recipe.label_smoothing} if recipe.label_smoothing else {}),
        **({"lookahead": repr(lookahead)} if lookahead else {}),
        **({"freeze_weights": [repr(callback) for callback in held]} if held else {}),
        "class_names": loaded["class_names"], "input_shape": list(network.input_shape[1:]),
        "processes": world.size, "sync_batchnorm": sync_batchnorm,
        "versions": {"hubel": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        **({"budget": plan} if plan else {}),
    }  # fmt: skip
    if budget is not None or one_cycle_peak is not None or recipe.one_cycle:
        steps_per_epoch = _steps_per_epoch(train_data, per_process, holdout, world.size)
        total_steps = plan["total_steps"] if plan else epochs * steps_per_epoch
        peak = one_cycle_peak or (chosen.learning_rate if rate_chosen else 2 * chosen.learning_rate)
        config["one_cycle_peak"] = peak
        chosen.schedule = OneCycle(peak, total_steps=total_steps, **recipe.one_cycle_settings)
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
    if lookahead:  # after the budget's limit: a stop inside an epoch still leaves the slow copy
        callbacks.append(lookahead)
    callbacks += held
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
        history = network.fit(*train_data, validation_split=holdout, **fit_options)
    if world.size > 1:
        if not world.main:  # process 0 measures, reports and answers for the run
            return RunResult(directory, math.nan, math.nan, time.perf_counter() - started)
        torch.set_num_threads(cores())  # the others are done: process 0 finishes on every core
    notes = [
        f"Trained with {config['optimizer_used']}, batch {batch_size}"
        f"{f', labels smoothed by {recipe.label_smoothing:g}' if recipe.label_smoothing else ''}"
        f"{f', {lookahead!r}' if lookahead else ''}"
        f"{''.join(f', {callback!r}' for callback in held)}"
        f", in {config['precision']}"
        f"{' autocast (the test set is measured in float32)' if config['precision'] != 'float32' else ''}; "
        f"augmentation: {augment or 'none'}"
        f"{'; predictions average each image with its mirror image' if network.test_time_augmentation else ''}"
        f"{f'; on {world.size} processes of {per_process} examples each' if world.size > 1 else ''}."
    ]
    if plan:
        plan["steps_taken"], plan["stopped_by"] = limit.taken, limit.stopped_by
        kept = (
            f"the best epoch (validation accuracy {max(history.history['val_accuracy']):.4f}) was kept"
            if validated
            else "the last epoch was kept (no validation data)"
        )
        per_step = plan.get("seconds_per_step_in_training", plan["seconds_per_step"])
        trained = f"{len(history.epoch)} epoch{'' if len(history.epoch) == 1 else 's'}"
        notes.append(
            f"Time budget {budget:.0f} s: {per_step * 1000:.1f} ms per training step, so {plan['total_steps']} steps "
            f"({plan['steps_taken']} taken) in {trained} of up "
            f"to {plan['steps_per_epoch']} with a one-cycle schedule, after validation, the test pass and the report "
            f"were set aside; {kept}."
        )
        plan["fit_seconds"] = history.params.get("seconds")
        plan["before_fit_seconds"] = fit_started - started
    extra: dict[str, Any] = {"world_size": world.size}
    if plan:
        extra["budget"] = {**plan, "finish_started": time.perf_counter() - started}
    return _finish_run(directory, network, history, loaded, data, model_name, seed, notes, started, extra)


_LAUNCH_ONLY = ("nproc", "port", "started_at")  # train's arguments that its launched processes do not take


def _per_process(batch_size: int, world: World) -> int:
    """Each process's share of the run's batch (the same training whatever the processes)."""
    if batch_size % world.size:
        raise ConfigError(
            f"a batch of {batch_size} does not split evenly over {world.size} processes: give --batch-size a "
            f"multiple of {world.size}."
        )
    return batch_size // world.size


def _image_network(name: str, loaded: dict[str, Any], augment: str | None, tta: str, data: str) -> tuple[Any, str]:
    """The network for the zoo name or spec file, with its augmentation and test-time flips, its
    data-fitted layers adapted to the training images."""
    network, model_name = _build_model(name, loaded["shape"], len(loaded["class_names"]), augment)
    _adapt(network, loaded["train"], loaded["holdout"])
    network.test_time_augmentation = _test_time_augmentation(tta, network, data)  # validation uses it too
    return network, model_name


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
    test_outputs: Callable[[Any], tuple[Any, str]] | None = None,
) -> RunResult:
    """Save the model, measure the test set in float32, write the report and result.json. A folder
    without a test/ split is measured on its validation split, and every figure says so.
    test_outputs: a function of the test inputs that returns the model's outputs on them and the
    engine's note, in place of the test pass (transfer learning's head on the cached features)."""
    split = loaded.get("test_split", "test")
    takes = "raw text (TextVectorization inside)" if loaded.get("kind") == "text" else "raw 0-255 pixels"
    metadata = {"class_names": loaded["class_names"], "preprocessing": f"{takes} (preprocessing inside)",
                "data": data, "history": history.history}  # fmt: skip
    if len(history.epoch) <= STEP_CURVES_UP_TO:  # the report draws a short run per step: keep what it draws
        metadata["history_steps"] = history.steps
    network.save(directory / "model.hubel", metadata=metadata)
    network.trainer.use_precision(None)  # the test set is measured in float32, as the saved model predicts
    test = loaded["test"]
    # one pass over the test set, on the faster engine, gives both the figures and what the report draws
    from hubel.inspect.confusion import examples  # imports matplotlib: before the pass is timed

    test_started = time.perf_counter()
    inputs, targets = test if isinstance(test, tuple) else examples(test)
    speed = extra.get("budget", {}).get("inference_seconds_per_example")
    if test_outputs is not None:
        outputs, engine = test_outputs(inputs)
    else:
        outputs, engine = _test_outputs(network, inputs, seconds_per_example=speed)
    del inputs  # the report reads the images again: one copy of them in memory at a time
    logs = network.trainer.score(outputs, targets)
    loss_value, accuracy = logs["loss"], logs["accuracy"]
    from hubel.inspect.report import report

    report_started = time.perf_counter()
    report(network, history, loaded.get("report_data", test), path=directory / "report.html",
           class_names=loaded["class_names"], title=f"{model_name} on {Path(data).name}", seed=seed,
           notes=notes, max_examples=100_000, outputs=outputs, split=split)  # fmt: skip
    seconds = time.perf_counter() - started
    extra["test_engine"] = engine
    if "budget" in extra:
        extra["budget"].update(test_pass_seconds=report_started - test_started,
                               report_seconds=time.perf_counter() - report_started)  # fmt: skip
    result = {"test_accuracy": float(accuracy), "test_loss": float(loss_value), "measured_on": split,
              "seconds": seconds, "model": model_name, "data": data, "epochs_trained": len(history.epoch),
              **extra}  # fmt: skip
    if "budget" in result:  # what each phase cost, beside what the plan set aside for it
        result["budget"]["spent_seconds"] = seconds
        result["budget"]["finish_seconds"] = seconds - result["budget"].pop("finish_started")
    (directory / "result.json").write_text(json.dumps(result, indent=2))
    print(
        f"{'Test accuracy' if split == 'test' else 'Validation accuracy (no test/ folder)'} {accuracy:.4f}, "
        f"loss {loss_value:.4f} ({seconds:.0f} s). "
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
    validation_split: float | None,
    command: str | None,
    started: float,
    plan: dict[str, Any] | None = None,
) -> RunResult:
    """Transfer learning from a pretrained backbone: features once, a head on them, then (with
    fine_tune) the top blocks trained on the images at a low rate (benchmarks/transfer.py). plan:
    a budget's (_plan_transfer), recorded in result.json with what each phase cost."""
    from hubel.models.applications.transfer import extract_features, transfer_learn

    head_epochs = epochs or _TRANSFER_HEAD_EPOCHS
    fine_tune_epochs = _TRANSFER_FINE_TUNE_EPOCHS if fine_tune else 0
    total = head_epochs + fine_tune_epochs
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "command": command or " ".join(sys.argv), "data": data, "model": backbone, "epochs": total,
        "head_epochs": head_epochs, "fine_tune": fine_tune, "fine_tune_epochs": fine_tune_epochs,
        "fine_tune_blocks": _TRANSFER_FINE_TUNE_BLOCKS if fine_tune else 0, "augment": augment, "seed": seed,
        "validation_split": validation_split, **({"budget": plan} if plan else {}),
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
    if plan:
        notes.append(_transfer_plan_line(plan))  # the input size a budget chose, and why
        extra["budget"] = {**plan, "finish_started": time.perf_counter() - started}

    def head_on_features(inputs: Any) -> tuple[Any, str]:
        """The model's outputs as the head's on the backbone's features: the same numbers as the whole
        model on the pixels, and a folder without test/ has them cached already (its validation split)."""
        features, _ = extract_features(result.extractor, inputs, verbose=False)
        return result.head.predict(features, batch_size=256), "PyTorch (the head on the backbone's cached features)"

    return _finish_run(directory, result.model, result.history, loaded, data, backbone, seed, notes, started, extra,
                       test_outputs=head_on_features)  # fmt: skip
