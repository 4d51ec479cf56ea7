"""What runs the model behind `hubel serve`: an engine that maps a batch of prepared inputs to
scores, and a micro-batcher that groups concurrent requests into one engine call.

    engine = choose_engine(model)             # ONNX Runtime when installed and faithful, else PyTorch
    batcher = MicroBatcher(engine, max_batch=64, max_wait_ms=2)
    scores = await batcher(example)           # (classes,) for one (H, W, C) image or (T,) token ids

ONNX Runtime ran the zoo's convnets 1.8–3.7× faster than model.predict on this project's CPUs
(benchmarks/export_speed.py), so "auto" exports the model once at start-up, through the same
parity-checked export as `hubel export`, and falls back to PyTorch (saying why) when ONNX Runtime
is missing or the export does not reproduce the model.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubel.errors import ConfigError, HubelError
from hubel.models.model import Model

__all__ = ["ENGINES", "Engine", "MicroBatcher", "choose_engine"]

ENGINES = ("auto", "onnxruntime", "torch")


@dataclass
class Engine:
    """A batch of prepared inputs -> scores: (N, H, W, C) float32 pixels or (N, T) int64 token ids
    -> (N, outputs) float32. `note` says why this engine was chosen."""

    name: str
    run: Callable[[np.ndarray], np.ndarray]
    note: str = ""
    parity: float | None = field(default=None)  # ONNX Runtime's largest difference from hubel

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)


def _torch_engine(model: Model, note: str) -> Engine:
    model.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.predict(batch, batch_size=max(len(batch), 1))

    return Engine("torch", run, note)


def _onnx_engine(model: Model, threads: int | None) -> Engine:
    import onnxruntime

    from hubel.export.onnx import export_onnx  # serve/ sits above export/

    with tempfile.TemporaryDirectory(prefix="hubel-serve-") as folder:
        result = export_onnx(model, Path(folder) / "model.onnx")
        graph = result.path.read_bytes()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are not the user's business
    options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's choice, one per core
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": batch})[0]

    return Engine("onnxruntime", run, f"ONNX Runtime {onnxruntime.__version__}", result.max_difference)


def choose_engine(model: Model, engine: str = "auto", threads: int | None = None) -> Engine:
    """The engine for `model`: "onnxruntime", "torch", or "auto" (ONNX Runtime on CPU when it is
    installed and its export reproduces the model; PyTorch otherwise, and always on a GPU).
    threads: ONNX Runtime's threads (default: one per core)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={engine!r}")
    if engine == "torch":
        return _torch_engine(model, "PyTorch, as asked")
    on_gpu = any(parameter.device.type != "cpu" for parameter in model.parameters())
    if engine == "auto" and on_gpu:
        return _torch_engine(model, "PyTorch on the model's GPU")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if engine == "onnxruntime":
            raise ConfigError("engine 'onnxruntime' needs it installed: pip install onnxruntime") from None
        return _torch_engine(model, "PyTorch (onnxruntime is not installed: pip install onnxruntime for speed)")
    try:
        return _onnx_engine(model, threads)
    except HubelError as error:
        if engine == "onnxruntime":
            raise
        return _torch_engine(model, f"PyTorch (the ONNX export did not reproduce the model: {error})")


class MicroBatcher:
    """Groups concurrent calls into one engine call: the first waiting example opens a batch,
    which takes whatever else arrives within max_wait_ms (up to max_batch examples), then runs on
    a single worker thread while the event loop keeps accepting requests. Under no load an
    example waits at most max_wait_ms; under load the batches grow toward max_batch.

    Every call that touches the model goes through `call_in_worker`, so the model never runs on
    two threads at once (Grad-CAM's hooks, say, see only their own forward pass).
    """

    def __init__(self, engine: Callable[[np.ndarray], np.ndarray], max_batch: int = 64, max_wait_ms: float = 2.0):
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1. Received: max_batch={max_batch}")
        if max_wait_ms < 0:
            raise ConfigError(f"max_wait_ms must be 0 or more. Received: max_wait_ms={max_wait_ms}")
        self.engine, self.max_batch, self.max_wait = engine, max_batch, max_wait_ms / 1000
        # the last 1,000 batch sizes and running totals (a long-lived server must not keep them all)
        self.batch_sizes: deque[int] = deque(maxlen=1_000)
        self.batches_run, self.examples_run = 0, 0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hubel-serve-model")
        self._loop: asyncio.AbstractEventLoop | None = None  # a queue and a task per event loop
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, example: np.ndarray) -> np.ndarray:
        """The engine's output row for one example."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._serve_batches(self._queue))
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put_nowait((example, future))
        return await future

    async def call_in_worker(self, function: Callable[..., Any], *arguments: Any) -> Any:
        """Run function(*arguments) on the model's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *arguments)

    async def _serve_batches(self, queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            live = [(example, future) for example, future in batch if not future.cancelled()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            self.batches_run, self.examples_run = self.batches_run + 1, self.examples_run + len(live)
            try:
                scores = await self.call_in_worker(self._run, [example for example, _ in live])
            except Exception as error:  # one bad batch fails its own requests, not the server
                for _, future in live:
                    if not future.done():
                        future.set_exception(error)
                continue
            for row, (_, future) in zip(scores, live):
                if not future.done():
                    future.set_result(row)

    def _run(self, examples: list[np.ndarray]) -> list[np.ndarray]:
        """One engine call per input shape (texts without a fixed length give ids of several)."""
        rows: list[np.ndarray] = [np.empty(0)] * len(examples)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, example in enumerate(examples):
            by_shape.setdefault(example.shape, []).append(index)
        for indices in by_shape.values():
            scores = np.asarray(self.engine(np.stack([examples[i] for i in indices])))
            for index, row in zip(indices, scores):
                rows[index] = row
        return rows

    def close(self) -> None:
        """Stop the batching task and the model's thread."""
        if self._task is not None:
            self._task.cancel()
        self._worker.shutdown(wait=False, cancel_futures=True)
