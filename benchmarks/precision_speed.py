"""Training throughput in float32 and with bf16 autocast, for the zoo's networks through
hubel's own fit (SGD, batch 128, uint8 NHWC data as hubel train feeds it, steady state after
a warm-up pass). It is what `--precision auto` decides on: bf16 only where it is faster.

Run by hand:
    .venv/bin/python benchmarks/precision_speed.py [--examples 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from hubel.models.zoo import create_model
from hubel.train.trainer import fast_bfloat16

CASES = [
    ("fashion_cnn", (28, 28, 1)),
    ("cifar_convnet", (32, 32, 3)),
    ("fast_resnet", (28, 28, 1)),
    ("fast_resnet", (32, 32, 3)),
    ("fast_resnet_wide", (32, 32, 3)),
]


def images_per_second(name: str, shape: tuple[int, ...], precision: str | None, examples: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = create_model(name, input_shape=shape)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", mixed_precision=precision)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (examples, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, examples)
    model.fit(x[:512], y[:512], batch_size=128, verbose=0)  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=128, verbose=0)
        rates.append(examples / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    capability, fast = torch.backends.cpu.get_cpu_capability(), fast_bfloat16(torch.device("cpu"))
    instructions = [name for name, present in (("AMX", torch.cpu._is_amx_tile_supported()),
                    ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported())) if present]  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {capability} "
          f"({', '.join(instructions) or 'no bf16 instructions'}), --precision auto is bf16: {fast}")  # fmt: skip
    print(f"{'model':18} {'input':9} {'float32 img/s':>14} {'bf16 img/s':>11} {'speed-up':>9}")
    for name, shape in CASES:
        full = images_per_second(name, shape, None, args.examples, args.repeats)
        half = images_per_second(name, shape, "bf16", args.examples, args.repeats)
        size = "x".join(map(str, shape))
        print(f"{name:18} {size:9} {full:14,.0f} {half:11,.0f} {half / full:8.2f}x")


if __name__ == "__main__":
    main()
