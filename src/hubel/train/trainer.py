"""The training engine, over any torch.nn.Module: fit, evaluate, predict.

Read top to bottom: the step (forward, per-example loss, weighted mean, backward, optimizer
step), running sums kept on the device, one progress line per epoch, callbacks around every
phase, and checkpoints that let a killed run continue bit for bit. Data comes in through
batches.py (arrays become tensor slices of a shuffled index; any iterable of (x, y) batches
works too).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hubel.errors import ConfigError, DataError
from hubel.train.allocator import keep_freed_blocks
from hubel.train.batches import ArrayBatches, Batches, as_tensor, batches_of
from hubel.train.callbacks import Callback, CallbackList
from hubel.train.checkpoint import (
    CheckpointError,
    checkpoint_exists,
    load_checkpoint,
    random_states,
    restore_random_states,
    save_checkpoint,
)
from hubel.train.distributed import World, init
from hubel.train.history import History
from hubel.train.losses import Loss, get_loss, logits_of
from hubel.train.metrics import Metric, get_metric
from hubel.train.optimizers import Optimizer, get_optimizer
from hubel.train.progress import Progress, format_logs

__all__ = ["Trainer", "fast_bfloat16", "resolve_device", "set_seed", "test_time_forward"]

CHECKPOINT_NAME = "last.ckpt"
_LARGE_EXAMPLE = 100_000  # input values per example above which CPU inference runs in chunks of 8


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch: a CPU run with the same seed repeats bit for bit."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto': CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        try:
            return torch.device(device)
        except RuntimeError as error:
            raise ConfigError(
                f"expected `device` to be 'auto', 'cpu', 'cuda' or 'mps'. Received: {device!r} ({error})"
            ) from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _float32(output: Tensor) -> Tensor:
    """A model output (and the logits a softmax or sigmoid attached to it) in float32: under
    bf16/fp16 autocast the loss and the metrics are computed in float32, as Keras's mixed
    precision does; in bf16 an epoch's summed loss loses all but 3 significant digits."""
    logits = logits_of(output)
    if output.dtype == torch.float32 and (logits is None or logits.dtype == torch.float32):
        return output
    converted = output.float()
    if logits is not None:
        converted._hubel_logits = logits.float()  # type: ignore[attr-defined]
    return converted


def test_time_forward(forward: Callable[[Any], Any], model: nn.Module, x: Any) -> Any:
    """forward(x), or with the model's test_time_augmentation "flip" the mean of the outputs for
    the images and their mirror images: images come as a model takes them, (N, H, W, C) or
    grayscale (N, H, W), so the width is axis 2 (the model checks that it takes images)."""
    output = forward(x)
    if getattr(model, "test_time_augmentation", None) != "flip":
        return output

    def mirror(tensor: Any) -> Any:
        return tensor.flip(2) if isinstance(tensor, Tensor) and tensor.dim() >= 3 else tensor

    mirrored = forward([mirror(part) for part in x] if isinstance(x, (list, tuple)) else mirror(x))
    if isinstance(output, (list, tuple)):
        return [(a + b) / 2 for a, b in zip(output, mirrored)]
    return (output + mirrored) / 2  # the probabilities' mean (a loss on it reads them, clipped)


def _on_host(output: Tensor | Sequence[Tensor]) -> Tensor | list[Tensor]:
    """A batch's output (or each of a model's outputs) as float32 on the CPU."""
    if isinstance(output, (list, tuple)):
        return [part.float().cpu() for part in output]
    return output.float().cpu()


def fast_bfloat16(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training on this device: CUDA GPUs that support bf16, and
    CPUs with bf16 instructions, AMX tiles (Intel Sapphire Rapids and later) or AVX512-BF16 (AMD
    Zen 4 and later, Intel Cooper Lake), where oneDNN runs convolutions and matmuls in bf16
    (benchmarks/README.md, precision_speed.py). Elsewhere bf16 is emulated and float32 is faster."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
        return any(bool(probe()) for probe in probes if probe is not None)
    return False


# ----- the engine ---------------------------------------------------------------------------


def _same_architecture(saved: dict[str, Tensor], current: dict[str, Tensor]) -> dict[str, Tensor]:
    """The saved weights under the current model's names. Layer names count up per session
    (conv2d, conv2d_1, ...), so the same architecture built again in one process (a notebook
    cell run twice) has other names: weights whose shapes match one for one, in order, are
    the same model's."""
    if saved.keys() == current.keys():
        return saved
    pairs = list(zip(saved.items(), current.items()))
    if len(saved) == len(current) and all(value.shape == mine.shape for (_, value), (_, mine) in pairs):
        return {name: value for (_, value), (name, _) in pairs}
    return saved  # let load_state_dict report what differs


class _StopBetweenSteps(KeyboardInterrupt):
    """A Ctrl-C honoured at a step boundary: the state is consistent and can be checkpointed."""


@contextlib.contextmanager
def _interrupts_between_steps(trainer: Trainer) -> Iterator[None]:
    """Turn the first Ctrl-C into a request that the loop honours between two steps, so the
    checkpoint it saves is consistent; a second Ctrl-C interrupts at once."""
    trainer._interrupt_requested = trainer._interrupted = False
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def request(signum: int, frame: Any) -> None:
        if trainer._interrupt_requested:
            raise KeyboardInterrupt
        trainer._interrupt_requested = True

    signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Running:
    """Sums over the epoch so far, kept on the device."""

    loss: Tensor | None = None
    seen: int = 0
    step: int = 0
    # each step's [loss, *metrics] of its own batch, on the device, and its learning rate
    # (rows written, 1 + metrics), grown by doubling: one small tensor per step, kept until the
    # epoch's end, would pin the allocator's heap between the steps' large activations (glibc then
    # grew a CIFAR-10 run's memory by 0.5 MB a step; benchmarks/README.md)
    step_table: Tensor | None = None
    steps_written: int = 0
    step_rates: list[float] = field(default_factory=list)
    step_counts: list[int] = field(default_factory=list)  # examples each step counted (its weight over processes)


@dataclass
class _Run:
    """What one fit() call works with."""

    batches: Batches
    weights_for: Any  # labels -> per-example weights, or None
    progress: Progress
    callbacks: CallbackList
    checkpoint: Path | None
    checkpoint_every: int | None
    seed: int
    history: History


class Trainer:
    """Trains any torch module: Trainer(model, "adam", "sparse_categorical_crossentropy", ["accuracy"]).fit(x, y).

    The model takes a batch as the data gives it (hubel's Sequential takes NHWC arrays) and
    returns outputs the loss understands.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: str | Optimizer | torch.optim.Optimizer = "adam",
        loss: str | Loss | Any = "sparse_categorical_crossentropy",
        metrics: Sequence[str | Metric | Any] = (),
        device: str | torch.device = "auto",
        mixed_precision: str | None = None,
        jit_compile: bool = False,
    ) -> None:
        self.model = model
        self.inputs = int(getattr(model, "input_count", 1))  # a multi-input model's x is a list of arrays
        # torch.compile, as Keras's jit_compile: off by default, because on 2 CPU cores it ran the
        # Fashion-MNIST network at half the eager speed after 23 s of compiling (benchmarks/README.md).
        self.forward: Any = torch.compile(model) if jit_compile else model
        self.jit_compile = jit_compile
        self._world = World()  # the processes of the fit() under way (one outside fit)
        self._train_forward: Any = None  # the forward a fit() trains through (DistributedDataParallel's on several)
        self.device = resolve_device(device)
        self.use_precision(mixed_precision)
        self.loss = get_loss(loss)
        self.loss_name = loss.lower() if isinstance(loss, str) else getattr(self.loss, "name", "loss")
        from_logits = bool(getattr(self.loss, "from_logits", False))
        self.metrics = [get_metric(metric, self.loss_name, from_logits) for metric in metrics]
        self.optimizer = get_optimizer(optimizer)
        self.stop_training = False
        self.stop_reason: str | None = None
        self._placed = False
        self._epoch, self._running = 0, _Running()
        # a Ctrl-C: requested by this process's signal handler, agreed on by all processes at a step
        self._interrupt_requested = self._interrupted = False

    # ----- placement ---------------------------------------------------------------------

    def _place(self) -> None:
        if self._placed:
            return
        if self.device.type == "cpu":
            keep_freed_blocks()  # the activations of one step are reused by the next (train/allocator.py)
        self.model.to(self.device)  # weights keep their layout: NHWC data already runs convs channels-last
        self._placed = True

    def _build_optimizer(self) -> None:
        """Build the optimizer on the trainable parameters (training only: a frozen model still
        predicts and evaluates). Which parameters train is fixed at that point, as in Keras."""
        self._place()
        if not any(p.requires_grad for p in self.model.parameters()):
            warnings.warn(
                "the model has no trainable weights (are all its layers frozen?): fit reports the loss and "
                "changes nothing, as in Keras.",
                stacklevel=3,
            )
            return
        if self.optimizer.torch is None:
            self.optimizer.build(self.model.named_parameters())
            return
        built = {id(p) for group in self.optimizer.torch.param_groups for p in group["params"]}
        if built != {id(p) for p in self.model.parameters() if p.requires_grad}:
            raise ConfigError(
                "the trainable layers changed since the model was compiled (layer.trainable was set): call "
                "model.compile(...) again, as in Keras, so that the optimizer trains the layers now trainable."
            )

    def _to_device(self, values: Any) -> Any:
        if values is None:
            return None
        if isinstance(values, list):  # one array per input of a multi-input model
            return [self._to_device(part) for part in values]
        if not isinstance(values, Tensor):
            values = as_tensor(values, "batch")
        return values.to(self.device, non_blocking=True)

    # ----- one step ------------------------------------------------------------------------

    def _loss(self, output: Tensor, target: Tensor, weights: Tensor | None) -> Tensor:
        per_example = self.loss(output, target)
        if per_example.dim() == 0:
            return per_example
        if weights is not None:
            return (per_example * weights).mean()  # Keras: weighted sum over the batch size
        return per_example.mean()

    def use_precision(self, mixed_precision: str | None) -> None:
        """Switch what later steps compute in (see compile's mixed_precision): hubel train
        measures the test set in float32, as the saved model predicts."""
        self.autocast_dtype, self.scaler = self._precision(mixed_precision)

    def _precision(self, mixed_precision: str | None) -> tuple[torch.dtype | None, Any]:
        """None (float32), "bf16" or "fp16" autocast, or "auto": bf16 where the hardware runs it
        fast (CUDA with bf16; a CPU with AMX tiles, where it trained the zoo's networks 1.9-3.3×
        faster, or with AVX512-BF16, 1.1-1.8×; benchmarks/README.md), else float32. fp16 needs
        CUDA and a gradient scaler."""
        if mixed_precision is None:
            return None, None
        if mixed_precision not in ("auto", "bf16", "fp16"):
            raise ConfigError(f"expected mixed_precision None, 'auto', 'bf16' or 'fp16'. Received: {mixed_precision!r}")
        if mixed_precision == "auto":
            return (torch.bfloat16 if fast_bfloat16(self.device) else None), None
        if mixed_precision == "fp16":
            if self.device.type != "cuda":
                raise ConfigError(
                    f"mixed_precision='fp16' needs a CUDA GPU (this run is on {self.device.type}); use 'bf16' or None."
                )
            return torch.float16, torch.amp.GradScaler("cuda")
        return torch.bfloat16, None

    @property
    def precision(self) -> str:
        """What the steps compute in: 'float32', 'bf16' or 'fp16' (autocast)."""
        return {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def _train_step(
        self, x: Tensor, y: Tensor, weights: Tensor | None, running: _Running, share: float = 1.0
    ) -> Tensor:
        """One step on this process's batch, `share` of the global batch: its mean loss is scaled
        by share × processes, so that the processes' averaged gradients (DistributedDataParallel)
        are the gradient of the global batch's mean loss."""
        with self._autocast():
            output = _float32((self._train_forward or self.forward)(x))
        loss = self._loss(output, y, weights)
        if loss.requires_grad:  # else the model has no trainable weights: nothing to update
            scale = share * self._world.size
            objective = loss if scale == 1.0 else loss * scale
            self.optimizer.zero_grad()
            if self.scaler is not None:
                self.scaler.scale(objective).backward()
                self.optimizer.step(self.scaler)
            else:
                objective.backward()
                self.optimizer.step()
        count = len(y) if share > 0 else 0  # a stand-in example (share 0) counts for nothing
        running.loss = loss.detach() * count if running.loss is None else running.loss + loss.detach() * count
        running.seen += count
        if count:
            for metric in self.metrics:
                metric.update(output, y)
        batch_values = [
            m.last_batch if count and m.last_batch is not None else loss.new_zeros(()) for m in self.metrics
        ]
        self._write_step_row(running, torch.stack([loss.detach().float(), *batch_values]))
        running.step_rates.append(self.optimizer.learning_rate)
        running.step_counts.append(count)
        return loss

    @staticmethod
    def _write_step_row(running: _Running, row: Tensor) -> None:
        table = running.step_table
        if table is None or running.steps_written == len(table):
            grown = row.new_empty((max(256, 2 * running.steps_written), len(row)))
            if table is not None:
                grown[: running.steps_written] = table
            running.step_table = table = grown
        table[running.steps_written] = row
        running.steps_written += 1

    # ----- fit ------------------------------------------------------------------------------

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int = 32,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: Sequence[Callback] = (),
        validation_split: float = 0.0,
        validation_data: Any = None,
        shuffle: bool = True,
        class_weight: dict[int, float] | str | None = None,
        initial_epoch: int = 0,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
        resume_from: str | Path | None = None,
        distributed: bool = False,
        sync_batchnorm: bool = False,
    ) -> History:
        """Train for `epochs` epochs (counting from initial_epoch); see Sequential.fit for the arguments.

        distributed=True: this process is one of several (started by torchrun or
        hubel.train.distributed.launch) that train the model together: each takes batch_size
        examples of every global batch of batch_size × processes, the gradients are averaged by
        DistributedDataParallel, the metrics and validation are summed over processes, and only
        process 0 prints and writes checkpoints (callbacks run in every process). Started any
        other way, it is a single process. sync_batchnorm=True: BatchNormalization takes its
        statistics over the global batch instead of each process's part."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"expected `batch_size` to be a positive integer. Received: batch_size={batch_size!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ConfigError(f"expected 0 <= validation_split < 1. Received: validation_split={validation_split!r}")
        if sync_batchnorm and not distributed:
            raise ConfigError("sync_batchnorm=True synchronises processes: it needs distributed=True.")
        x = self._encode(x)
        x, y, validation_data = self._split_validation(x, y, validation_split, validation_data)
        world = init() if distributed else World()
        if world.size > 1 and self.device.type == "cuda":  # each process its own GPU
            self.device, self._placed = torch.device("cuda", world.local_rank), False
        self._build_optimizer()
        # drawn from torch's RNG (set_seed fixes it); on several processes, process 0's
        seed = world.broadcast(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        if world.rank:  # dropout and augmentation draw differently in each process
            set_seed(seed + world.rank)
        history, start_epoch, skip, running = History(), initial_epoch, 0, _Running()
        checkpoint = (
            Path(resume_from) if resume_from else (Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None)
        )
        if (resume or resume_from) and checkpoint is not None and (checkpoint_exists(checkpoint) or resume_from):
            state = world.broadcast(load_checkpoint(checkpoint) if world.main else None)  # read once, by process 0
            seed, start_epoch, skip, history, running = self._restore(state, world)
        history.params = {"epochs": epochs}  # callbacks may change the epochs while fit runs (callback.params)
        run = _Run(
            batches=batches_of(x, y, batch_size, shuffle, seed, self.inputs, world),
            weights_for=self._class_weights(class_weight, y, x),
            progress=Progress(verbose if world.main else 0, muted=not world.main),
            callbacks=CallbackList(list(callbacks), self, main=world.main, params=history.params),
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            seed=seed,
            history=history,
        )
        if isinstance(run.batches, ArrayBatches) and run.batches.count < world.size:
            raise DataError(
                f"{world.size} processes but {run.batches.count} training examples: each process needs one at "
                f"least. Use at most {run.batches.count} processes."
            )
        history.params.update(steps=run.batches.steps, batch_size=batch_size)
        if world.size > 1:
            history.params["world_size"] = world.size
        self.stop_training, self.stop_reason = False, None
        self.model.train()
        run.callbacks.call("on_train_begin", {})
        started = time.perf_counter()
        try:
            self._world, self._train_forward = world, self._data_parallel(world, sync_batchnorm)
            with _interrupts_between_steps(self):
                self._fit_epochs(run, start_epoch, skip, running, validation_data, batch_size)
        except KeyboardInterrupt as interrupt:
            if checkpoint is not None and isinstance(interrupt, _StopBetweenSteps):
                self._save(run, self._epoch, self._running)
                run.progress.warn(f"Interrupted: saved {checkpoint}; fit(..., resume=True) continues from there.")
            elif checkpoint is not None and checkpoint.exists():
                run.progress.warn(f"Interrupted at once; the last checkpoint is {checkpoint}.")
            else:
                run.progress.warn("Interrupted: returning the history so far.")
            self.stop_reason = "interrupted"
        finally:
            self._train_forward, self._world = None, World()
            self._synchronize_batchnorm(False)
        if self.stop_reason != "interrupted":  # use_ema: the averages become the weights, as Keras's fit ends
            self.optimizer.finalize_variable_values()
        history.params["seconds"] = history.params.get("seconds", 0.0) + time.perf_counter() - started
        self.model.eval()
        run.callbacks.call("on_train_end", {})
        if self.stop_reason and self.stop_reason != "interrupted":
            run.progress.warn(self.stop_reason)
        return history

    def _data_parallel(self, world: World, sync_batchnorm: bool) -> Any:
        """The module a distributed fit trains through: DistributedDataParallel around the model,
        which starts every process from process 0's weights and averages the gradients in the
        backward pass. None on one process."""
        if world.size == 1 or not any(p.requires_grad for p in self.model.parameters()):
            return None
        from torch.nn.parallel import DistributedDataParallel

        self._synchronize_batchnorm(sync_batchnorm)
        for parameter in self.model.parameters():
            if parameter.dim() == 4 and parameter.shape[1] == 1:
                # a kernel over one input channel gets its gradient in channels-last strides: give the
                # weight the same, or DDP copies the gradient on each step (and warns)
                height, width = parameter.shape[2:]
                weight = torch.empty_strided(parameter.shape, (height * width, 1, width, 1), dtype=parameter.dtype,
                                             device=parameter.device)  # fmt: skip
                parameter.data = weight.copy_(parameter.data)
        wrapped = DistributedDataParallel(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
        )
        return torch.compile(wrapped) if self.jit_compile else wrapped

    def _synchronize_batchnorm(self, on: bool) -> None:
        """Batch normalization over the global batch (layers with a `synchronized` switch)."""
        for module in self.model.modules():
            if hasattr(module, "synchronized"):
                module.synchronized = on

    def _fit_epochs(
        self, run: _Run, start_epoch: int, skip: int, running: _Running, validation_data: Any, batch_size: int
    ) -> None:
        epoch = start_epoch
        while epoch < run.history.params["epochs"]:  # a callback may move the end (params["epochs"])
            run.callbacks.call("on_epoch_begin", epoch, {})
            logs = self._run_epoch(run, epoch, skip, running)
            self._record_steps(run, epoch, skip, running)
            skip, running = 0, _Running()
            if logs is None:  # stopped inside the epoch (non-finite loss)
                return
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate_logs(validation_data, batch_size).items()})
            logs["learning_rate"] = self.optimizer.learning_rate
            run.progress.epoch_end(logs.pop("_steps"), logs.pop("_seconds"), logs)  # type: ignore[arg-type]
            run.callbacks.call("on_epoch_end", epoch, logs)
            run.history.append(epoch, logs)
            self._epoch, self._running = epoch + 1, _Running()
            if run.checkpoint is not None:
                self._save(run, epoch + 1, self._running)
            self._agree_to_stop()
            if self._interrupted:
                raise _StopBetweenSteps
            if self.stop_training:
                return
            epoch += 1

    def _run_epoch(self, run: _Run, epoch: int, skip: int, running: _Running) -> dict[str, float] | None:
        """One epoch of training steps (from step `skip` when resuming); None if it had to stop."""
        if skip == 0:
            for metric in self.metrics:
                metric.reset()
        self._epoch, self._running = epoch, running
        run.progress.epoch_begin(epoch, run.history.params["epochs"], run.batches.steps)
        start = time.perf_counter()
        step = skip
        # a host read costs nothing on the CPU; on several processes they agree on it every step
        check_every = 1 if self.device.type == "cpu" or self._world.size > 1 else 20
        for x_batch, y_batch, share in run.batches.epoch(epoch, skip):
            if y_batch is None:
                raise DataError("training needs targets: pass y, or a dataset that yields (x, y) batches.")
            run.callbacks.call("on_train_batch_begin", step, {})
            x_batch, y_batch = self._to_device(x_batch), self._to_device(y_batch)
            weights = run.weights_for(y_batch) if run.weights_for else None
            loss = self._train_step(x_batch, y_batch, weights, running, share)
            step += 1
            running.step = step
            save_now = run.checkpoint is not None and bool(run.checkpoint_every) and step % run.checkpoint_every == 0
            nonfinite = (step % check_every == 0 or save_now) and not bool(torch.isfinite(loss))
            if nonfinite and self._world.size == 1:  # never checkpoint a NaN
                return self._stop_for_nonfinite(run, epoch, step, loss)
            run.callbacks.call("on_train_batch_end", step - 1, {})
            if run.progress.live:
                run.progress.batch_end(step, self._logs(running))
            if self._agree_to_stop(nonfinite) and self._world.size > 1:
                return self._stop_for_nonfinite(run, epoch, step, loss)
            if save_now:
                self._save(run, epoch, running)
            if self._interrupted:  # Ctrl-C arrived during this step: stop at its end
                raise _StopBetweenSteps
            if self.stop_training:  # a callback stopped it inside the epoch: as Keras, the epoch still ends
                break  # with its logs and validation
        logs = self._logs(running, over_processes=True)
        logs["_steps"], logs["_seconds"] = step, time.perf_counter() - start
        return logs

    def _stop_for_nonfinite(self, run: _Run, epoch: int, step: int, loss: Tensor) -> None:
        saved = (
            f" The last good checkpoint is {run.checkpoint}."
            if run.checkpoint is not None and run.checkpoint.exists()
            else ""
        )
        value = float(loss.detach())
        became = f"became {value}" if not math.isfinite(value) else "became NaN or inf in another process"
        self.stop_reason = (
            f"Stopped: the loss {became} at epoch {epoch + 1}, step {step}.{saved} Lower the learning rate, or check "
            f"the data for NaN and inf values."
        )
        self.stop_training = True

    def _agree_to_stop(self, nonfinite: bool = False) -> bool:
        """On several processes, a NaN, a stop or a Ctrl-C in any one of them stops them all at the
        same step (one collective a step): a callback's clock or a signal can reach them apart.
        Returns whether any process saw a non-finite loss.

        The agreement goes to `_interrupted`, never back into `_interrupt_requested`: a Ctrl-C whose
        handler runs while the collective is under way would be overwritten and lost."""
        if self._world.size == 1:
            self._interrupted = self._interrupt_requested
            return nonfinite
        nonfinite, self._interrupted, self.stop_training = self._world.any(
            nonfinite, self._interrupt_requested, self.stop_training
        )
        return nonfinite

    def _record_steps(self, run: _Run, epoch: int, first_step: int, running: _Running) -> None:
        """The epoch's per-step values into the History (one device-to-host copy per epoch)."""
        if not running.steps_written:
            return
        values = running.step_table[: running.steps_written].cpu().double()  # (steps, 1 + metrics)
        if self._world.size > 1:  # each step's value over the global batch: weighted by the examples counted
            counts = torch.tensor(running.step_counts, dtype=torch.float64)
            summed = self._world.sum(torch.cat([values * counts[:, None], counts[:, None]], dim=1))
            values = summed[:, :-1] / summed[:, -1:].clamp(min=1)
        rows = values.tolist()
        names = ["loss", *(metric.name for metric in self.metrics)]
        values = {name: [row[index] for row in rows] for index, name in enumerate(names)}
        values["learning_rate"] = running.step_rates
        steps = run.batches.steps or first_step + len(rows)
        run.history.append_steps(epoch, steps, first_step, values)

    def _logs(self, running: _Running, over_processes: bool = False) -> dict[str, float]:
        """The loss and metrics so far; over_processes: summed over every process of the run
        first (a collective), so each one reports the global figures."""
        if over_processes and self._world.size > 1:
            self._sum_over_processes(running)
        logs = {"loss": float(running.loss) / running.seen if running.loss is not None else math.nan}
        logs.update({metric.name: metric.result() for metric in self.metrics})
        return logs

    def _sum_over_processes(self, running: _Running) -> None:
        zero = torch.zeros((), dtype=torch.float64)
        parts = [running.loss if running.loss is not None else zero, running.seen]
        for metric in self.metrics:
            parts += [metric.total if metric.total is not None else zero, metric.count]
        summed = self._world.sum(torch.stack([torch.as_tensor(part, dtype=torch.float64).cpu() for part in parts]))
        running.loss, running.seen = summed[0], int(summed[1])
        for index, metric in enumerate(self.metrics):
            metric.total, metric.count = summed[2 + 2 * index], int(summed[3 + 2 * index])

    def _encode(self, x: Any) -> Any:
        """The model's own encoding of raw inputs, once for all batches (a text model's strings to
        token ids), when the model has one (encode_inputs)."""
        encode = getattr(self.model, "encode_inputs", None)
        return encode(x) if encode is not None else x

    # ----- validation split and class weights ---------------------------------------------

    @staticmethod
    def _split_validation(x: Any, y: Any, fraction: float, validation_data: Any) -> tuple[Any, Any, Any]:
        if not fraction:
            return x, y, validation_data
        if validation_data is not None:
            raise ConfigError("give validation_split or validation_data, not both.")
        if not isinstance(x, (np.ndarray, Tensor)):
            raise ConfigError("validation_split needs array inputs; for a dataset, pass validation_data.")
        cut = int(len(x) * (1.0 - fraction))
        if cut == 0 or cut == len(x):
            raise DataError(f"validation_split={fraction} of {len(x)} examples leaves an empty split.")
        return (
            x[:cut],
            None if y is None else y[:cut],
            (x[cut:], None if y is None else y[cut:]),
        )  # the last part, as Keras

    def _class_weights(self, class_weight: Any, y: Any, x: Any):  # type: ignore[no-untyped-def]
        if class_weight is None:
            return None
        if class_weight == "balanced":
            labels = np.asarray(y if y is not None else getattr(x, "labels", None))
            if labels.dtype == object or labels.ndim == 0:
                raise ConfigError("class_weight='balanced' needs the labels: array targets or a dataset with .labels.")
            labels = labels.argmax(axis=-1) if labels.ndim == 2 and labels.shape[1] > 1 else labels.reshape(-1)
            counts = np.bincount(labels.astype(np.int64))
            present = counts > 0
            class_weight = {i: len(labels) / (present.sum() * c) for i, c in enumerate(counts) if c}
        if not isinstance(class_weight, dict):
            raise ConfigError(
                f"expected class_weight to be a dict {{class: weight}} or 'balanced'. Received: {class_weight!r}"
            )
        size = max(int(k) for k in class_weight) + 1
        table = torch.ones(size, device=self.device)
        for label, weight in class_weight.items():
            table[int(label)] = float(weight)

        def weights_for(target: Tensor) -> Tensor:
            labels = target.argmax(dim=-1) if target.dim() == 2 and target.shape[1] > 1 else target.reshape(-1)
            return table[labels.long().clamp(max=size - 1)]

        return weights_for

    # ----- evaluate and predict --------------------------------------------------------------

    @torch.no_grad()
    def evaluate_logs(self, data: Any, batch_size: int = 32) -> dict[str, float]:
        """{'loss': ..., metric: ...} over data (an (x, y) pair or an iterable of batches)."""
        x, y = data if isinstance(data, (tuple, list)) and len(data) == 2 else (data, None)
        x = self._encode(x)
        self._place()
        was_training = self.model.training
        self.model.eval()
        running = self._fresh_tally()
        # inside a distributed fit, each process evaluates its shard and the sums are added up
        for x_batch, y_batch, share in batches_of(x, y, batch_size, False, 0, self.inputs, self._world).epoch(0):
            if y_batch is None:
                raise DataError("evaluate needs targets: pass y, or a dataset that yields (x, y) batches.")
            if share == 0:  # a stand-in: this process has no example of this batch
                continue
            for x_part, y_part in self._inference_chunks(self._to_device(x_batch), self._to_device(y_batch)):
                with self._autocast():
                    output = _float32(test_time_forward(self.forward, self.model, x_part))
                self._tally(running, output, y_part)
        self.model.train(was_training)
        return self._logs(running, over_processes=True)

    @torch.no_grad()
    def score(self, outputs: Any, y: Any, batch_size: int = 256) -> dict[str, float]:
        """The logs of evaluate_logs from outputs computed elsewhere (another engine running the
        same model, such as ONNX Runtime): the loss comes from the outputs, as Keras computes it
        from probabilities, and each metric as in evaluate."""
        outputs, targets = as_tensor(outputs, "outputs").float(), as_tensor(y, "y")
        if len(outputs) != len(targets):
            raise DataError(f"{len(outputs)} outputs but {len(targets)} targets. Give one output per target.")
        running = self._fresh_tally()
        for start in range(0, len(targets), batch_size):
            part = slice(start, start + batch_size)
            self._tally(running, self._to_device(outputs[part]), self._to_device(targets[part]))
        return self._logs(running)

    def _fresh_tally(self) -> _Running:
        for metric in self.metrics:
            metric.reset()
        return _Running()

    def _tally(self, running: _Running, output: Tensor, target: Tensor) -> None:
        """Add one batch's loss and metrics to the sums that evaluate reports."""
        loss = self._loss(output, target, None)
        running.loss = loss * len(target) if running.loss is None else running.loss + loss * len(target)
        running.seen += len(target)
        for metric in self.metrics:
            metric.update(output, target)

    def _inference_chunks(self, x: Any, y: Any) -> Iterator[tuple[Any, Any]]:
        """A batch in pieces of at most 8 examples when they are large images on a CPU: their
        activations then stay in cache, which ran MobileNetV2 at 224x224 2-2.5x faster than
        batches of 32 (benchmarks/transfer.py). Outputs are the same; small inputs pass whole."""
        if self.device.type != "cpu" or not isinstance(x, Tensor) or x[0].numel() < _LARGE_EXAMPLE or len(x) <= 8:
            yield x, y
            return
        for start in range(0, len(x), 8):
            yield x[start : start + 8], None if y is None else y[start : start + 8]

    def evaluate(
        self, x: Any, y: Any = None, batch_size: int = 32, verbose: int | str = "auto", return_dict: bool = False
    ) -> float | list[float] | dict[str, float]:
        """The loss, or [loss, *metrics] when there are metrics, or with return_dict the logs by
        name (Keras's return values)."""
        start = time.perf_counter()
        logs = self.evaluate_logs((x, y) if y is not None else x, batch_size)
        Progress(verbose).message(f"Evaluate - {time.perf_counter() - start:.0f}s - {format_logs(logs)}")
        if return_dict:
            return dict(logs)
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    @torch.no_grad()
    def predict(self, x: Any, batch_size: int = 32) -> Any:
        """Model outputs for every example, as one NumPy array (a list of them, one an output, for
        a model with several outputs, as Keras's predict)."""
        x = self._encode(x)
        self._place()
        was_training = self.model.training
        self.model.eval()
        with self._autocast():
            outputs = [
                _on_host(test_time_forward(self.forward, self.model, x_part))
                for x_batch, _, _ in batches_of(x, None, batch_size, False, 0, self.inputs).epoch(0)
                for x_part, _ in self._inference_chunks(self._to_device(x_batch), None)
            ]
        self.model.train(was_training)
        if not outputs:
            raise DataError("predict got no examples.")
        if isinstance(outputs[0], list):  # several outputs: one array each
            return [torch.cat([batch[index] for batch in outputs]).numpy() for index in range(len(outputs[0]))]
        return torch.cat(outputs).numpy()

    # ----- checkpoints -------------------------------------------------------------------------

    def _save(self, run: _Run, epoch: int, running: _Running) -> None:
        """Checkpoint the run at `epoch`, after `running.step` steps of it. On several processes
        every one hands in its own running sums and random states, and process 0 writes."""
        if run.checkpoint is None:
            return
        own = {
            "running": {
                "loss": None if running.loss is None else running.loss.cpu(),
                "seen": running.seen,
                "metrics": [(None if m.total is None else m.total.cpu(), m.count) for m in self.metrics],
            },
            "random": random_states(self.model),
        }
        ranks = self._world.gather(own)
        if not self._world.main:
            return
        save_checkpoint(
            run.checkpoint,
            {
                "format": "hubel.checkpoint.v1",
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "seed": run.seed,
                "epoch": epoch,
                "step": running.step,
                "history": run.history.to_dict(),
                **own,  # process 0's, as a single process writes them
                "world_size": self._world.size,
                **({"ranks": ranks} if self._world.size > 1 else {}),
            },
        )

    def _restore(self, state: dict[str, Any], world: World) -> tuple[int, int, int, History, _Running]:
        try:
            self.model.load_state_dict(_same_architecture(state["model"], self.model.state_dict()))
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(
                f"the checkpoint does not fit this model or optimizer ({str(error).splitlines()[0]}). Resume with the "
                f"model that wrote it, or start without resume."
            ) from None
        own = state
        saved_size = int(state.get("world_size", 1))
        if saved_size != world.size and int(state["step"]):
            raise CheckpointError(
                f"the checkpoint was written in the middle of an epoch by {saved_size} process(es); resume it with "
                f"{saved_size} (--nproc {saved_size}), or from an epoch's end."
            )
        if saved_size == world.size and world.size > 1:
            own = state["ranks"][world.rank]
        restore_random_states(self.model, own["random"])
        if saved_size != world.size and world.rank:  # another split of the work: fresh draws per process
            set_seed(int(state["seed"]) + world.rank)
        saved = own["running"]
        device = self.device
        running = _Running(
            None if saved["loss"] is None else saved["loss"].to(device), int(saved["seen"]), int(state["step"])
        )
        for metric, (total, count) in zip(self.metrics, saved["metrics"]):
            metric.total, metric.count = None if total is None else total.to(device), int(count)
        return int(state["seed"]), int(state["epoch"]), int(state["step"]), History.from_dict(state["history"]), running
