"""Map a function over many files in worker processes, with a progress bar on terminals.

Small jobs run in this process (starting processes would cost more than it saves). On Linux
workers are forked, so they start at once; each runs torch (if it uses it) on one thread.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any, TypeVar

__all__ = ["parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

_SERIAL_BELOW = 64


def parallel_map(
    function: Callable[..., R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    chunk: int = 16,
    label: str = "Working",
    progress: bool = False,
    **options: Any,
) -> list[R]:
    """[function(item, **options) for item in items], in order, spread over `workers` processes."""
    workers = workers or os.cpu_count() or 1
    chunks = [list(items[i : i + chunk]) for i in range(0, len(items), chunk)]
    run_chunk = partial(_run_chunk, function, options)
    results: list[R] = []
    with _progress(label, len(items), progress) as advance:
        if workers == 1 or len(items) < _SERIAL_BELOW:
            for part in chunks:
                results += run_chunk(part)
                advance(len(part))
            return results
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_one_thread) as pool:
            for part, done in zip(chunks, pool.map(run_chunk, chunks)):
                results += done
                advance(len(part))
    return results


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run_chunk(function: Callable[..., R], options: dict[str, Any], items: list[T]) -> list[R]:
    return [function(item, **options) for item in items]


@contextlib.contextmanager
def _progress(label: str, total: int, show: bool) -> Iterator[Callable[[int], None]]:
    if not (show and total and sys.stderr.isatty()):
        yield lambda count: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(label, BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)
