import asyncio
import threading
import time

import numpy as np
import pytest

from hubel.errors import ConfigError
from hubel.serve import MicroBatcher


class RecordingEngine:
    """Sums each example's values, records every batch, and takes `seconds` per call."""

    def __init__(self, seconds: float = 0.0, fail_on: float | None = None) -> None:
        self.seconds, self.fail_on, self.batches, self.threads = seconds, fail_on, [], set()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch.shape)
        self.threads.add(threading.get_ident())
        time.sleep(self.seconds)
        if self.fail_on is not None and (batch == self.fail_on).any():
            raise RuntimeError("this batch cannot run")
        return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True)


def run(batcher: MicroBatcher, examples: list[np.ndarray]) -> list:
    async def send() -> list:
        return await asyncio.gather(*(batcher(example) for example in examples), return_exceptions=True)

    return asyncio.run(send())


def test_concurrent_examples_are_batched_up_to_the_limit_and_answered_in_order():
    engine = RecordingEngine(seconds=0.01)
    batcher = MicroBatcher(engine, max_batch=8, max_wait_ms=5)
    examples = [np.full((2, 2), i, np.float32) for i in range(30)]
    answers = run(batcher, examples)
    assert [float(answer[0]) for answer in answers] == [4.0 * i for i in range(30)]
    assert sum(batcher.batch_sizes) == 30 and max(batcher.batch_sizes) == 8 and len(batcher.batch_sizes) <= 5
    assert (batcher.batches_run, batcher.examples_run) == (len(batcher.batch_sizes), 30)
    assert len(engine.threads) == 1 and threading.get_ident() not in engine.threads  # one worker thread, not the loop


def test_a_lone_example_waits_no_longer_than_max_wait():
    batcher = MicroBatcher(RecordingEngine(), max_batch=64, max_wait_ms=30)

    async def one() -> float:
        started = time.perf_counter()
        await batcher(np.ones(3, np.float32))
        return time.perf_counter() - started

    waited = asyncio.run(one())
    assert list(batcher.batch_sizes) == [1] and waited < 1.0  # it was not held for a full batch


def test_examples_of_different_shapes_run_in_separate_engine_calls():
    engine = RecordingEngine()
    batcher = MicroBatcher(engine, max_batch=16, max_wait_ms=20)
    answers = run(batcher, [np.ones(3, np.int64), np.ones(5, np.int64), np.ones(3, np.int64)])
    assert [int(answer[0]) for answer in answers] == [3, 5, 3]
    assert sorted(engine.batches) == [(1, 5), (2, 3)]


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs():
    batcher = MicroBatcher(RecordingEngine(fail_on=7.0), max_batch=4, max_wait_ms=20)
    answers = run(batcher, [np.full(2, 7.0, np.float32), np.full(2, 1.0, np.float32)])
    assert all(isinstance(answer, RuntimeError) for answer in answers)
    assert float(run(batcher, [np.full(2, 3.0, np.float32)])[0][0]) == 6.0  # a new event loop, a new queue


@pytest.mark.parametrize(("arguments", "message"), [({"max_batch": 0}, "max_batch"), ({"max_wait_ms": -1}, "max_wait")])
def test_bad_settings_are_refused(arguments, message):
    with pytest.raises(ConfigError, match=message):
        MicroBatcher(RecordingEngine(), **arguments)
