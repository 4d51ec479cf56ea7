"""Scaling out on one machine: training throughput of one process using every core against N
processes (torch.distributed, gloo, DistributedDataParallel) with cores / N threads each and
the same global batch split over them, through hubel's own fit. On one machine both use every
core, so the efficiency (N processes' images/s over one process's) is 1.0 when the processes
cost nothing. Also what hubel's per-step agreement (one small all-reduce) costs, and what the
launch costs beyond the work (starting N Python processes, importing torch, meeting).

Each contender trains the same uint8 NHWC data for a warm-up epoch, then `--repeats` timed
epochs; the figure is images per second of the timed epochs (process 0's clock).

Run by hand:
    .venv/bin/python benchmarks/distributed_speed.py [--examples 4096] [--repeats 3] [--nproc 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hubel.models.zoo import create_model
from hubel.train.distributed import cores, init, launch

CASES = [("fashion_cnn", (28, 28, 1), 32), ("fashion_cnn", (28, 28, 1), 128), ("cifar_convnet", (32, 32, 3), 128),
         ("fast_resnet", (32, 32, 3), 128)]  # fmt: skip


def epochs_per_second(name: str, shape: tuple[int, ...], batch: int, examples: int, repeats: int) -> dict:
    """Runs in every process (or alone): the timed epochs' images/s and the cost of one agreement."""
    started = time.perf_counter()
    world = init()
    torch.manual_seed(0)
    model = create_model(name, input_shape=shape)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (examples, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, examples)
    per_process = batch // world.size
    distributed = world.size > 1
    model.fit(x[: batch * 4], y[: batch * 4], batch_size=per_process, verbose=0, distributed=distributed)  # warm-up
    rates = []
    for _ in range(repeats):
        world.barrier()
        start = time.perf_counter()
        model.fit(x, y, batch_size=per_process, verbose=0, distributed=distributed)
        rates.append(examples / (time.perf_counter() - start))
    start = time.perf_counter()
    for _ in range(200):
        world.any(False, False)
    agreement = (time.perf_counter() - start) / 200
    seconds = time.perf_counter() - started
    return {"rate": statistics.median(rates), "agreement": agreement, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {cores()} cores, {args.examples} examples, Adam, float32")
    print(
        f"{'model':14} {'input':8} {'batch':>5} {'1 proc img/s':>13} {f'{args.nproc} procs img/s':>14} "
        f"{'efficiency':>10} {'agree/step':>10} {'launch s':>8}"
    )
    for name, shape, batch in CASES:
        alone = epochs_per_second(name, shape, batch, args.examples, args.repeats)
        started = time.perf_counter()
        spread = launch(epochs_per_second, args.nproc, name, shape, batch, args.examples, args.repeats)
        total = time.perf_counter() - started
        size, efficiency, launched = (
            "x".join(map(str, shape)),
            spread["rate"] / alone["rate"],
            total - spread["seconds"],
        )
        print(
            f"{name:14} {size:8} {batch:5} {alone['rate']:13,.0f} {spread['rate']:14,.0f} "
            f"{efficiency:10.2f} {spread['agreement'] * 1e6:8.0f}us {launched:8.1f}"
        )


if __name__ == "__main__":
    main()
