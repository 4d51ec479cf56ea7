"""Training throughput: hubel's fit against a hand-written PyTorch loop on the same network and
data — the tutorials' Fashion-MNIST network (243,786 params) and CIFAR-10 network (703,594
params), batch 32 and 128, synthetic in-memory data, steady state (after a warm-up epoch).

The PyTorch loop is written the fast way: model and data in channels_last, float32 data on
the device, slices of a shuffled index, logits with F.cross_entropy. hubel's model is what a
user writes: softmax output, "sparse_categorical_crossentropy", metrics=["accuracy"], NHWC
float32 numpy data.

Keras 3 joins the table with --keras-python: the python of an environment holding keras, jax
and torch==2.13.0 (keras_speed.py says how to make it); each backend runs in its own process.

Run by hand:
    .venv/bin/python benchmarks/train_speed.py [--examples 4096] [--repeats 5] [--keras-python .venv-keras/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import hubel
from hubel import layers as L


def fashion_layers():
    return [
        L.Conv2D(64, 3, activation="relu", input_shape=(28, 28, 1)),
        L.MaxPooling2D(2),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(128, activation="relu"),
        L.Dense(10, activation="softmax"),
    ]


def fashion_torch():
    return nn.Sequential(
        nn.Conv2d(1, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def cifar_layers():
    return [
        L.Conv2D(32, 3, activation="relu", input_shape=(32, 32, 3)),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Flatten(),
        L.Dense(1024, activation="relu"),
        L.Dense(10, activation="softmax"),
    ]


def cifar_torch():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 1024), nn.ReLU(), nn.Linear(1024, 10),
    )  # fmt: skip


def plain_pytorch(make, x_nhwc: np.ndarray, y: np.ndarray, batch: int) -> float:
    model = make().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(y).long()

    def epoch() -> None:
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            loss = F.cross_entropy(model(x[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()  # warm-up
    start = time.perf_counter()
    epoch()
    return len(x) / (time.perf_counter() - start)


def hubel_fit(layers, x_nhwc: np.ndarray, y: np.ndarray, batch: int) -> float:
    model = hubel.Sequential(layers())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_nhwc, y, batch_size=batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x_nhwc, y, batch_size=batch, epochs=1, verbose=0)
    return len(x_nhwc) / (time.perf_counter() - start)


def keras_speeds(python: str, examples: int, repeats: int) -> dict[tuple[str, str, int], float]:
    """{(backend, network, batch): images/s} from keras_speed.py, one process per backend."""
    script = Path(__file__).with_name("keras_speed.py")
    speeds = {}
    for backend in ("torch", "jax"):
        result = subprocess.run(
            [python, str(script), "--examples", str(examples), "--repeats", str(repeats)],
            env={**os.environ, "KERAS_BACKEND": backend},
            capture_output=True,
            text=True,
            check=True,
        )
        for line in result.stdout.splitlines():
            row = json.loads(line)
            speeds[(backend, row["network"], row["batch"])] = row["images_per_second"]
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keras-python", help="python of the Keras environment (see keras_speed.py)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.examples} examples per timed epoch")
    keras = keras_speeds(args.keras_python, args.examples, max(1, args.repeats // 2)) if args.keras_python else {}
    rng = np.random.default_rng(0)
    networks = {
        "Fashion-MNIST network": (fashion_layers, fashion_torch, (28, 28, 1)),
        "CIFAR-10 network": (cifar_layers, cifar_torch, (32, 32, 3)),
    }
    extra = " Keras torch | Keras jax | hubel / best Keras |" if keras else ""
    print(f"| network | batch | plain PyTorch img/s | hubel fit img/s | hubel / PyTorch |{extra}")
    print("|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if keras else ""))
    for name, (layers, make, shape) in networks.items():
        x = rng.random((args.examples, *shape), dtype=np.float32)
        y = rng.integers(0, 10, args.examples).astype(np.int64)
        for batch in (32, 128):
            plain, ours = [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                plain.append(plain_pytorch(make, x, y, batch))
                ours.append(hubel_fit(layers, x, y, batch))
            p, h = statistics.median(plain), statistics.median(ours)
            row = f"| {name} | {batch} | {p:,.0f} | {h:,.0f} | {h / p:.2f}x |"
            if keras:
                torch_speed, jax_speed = keras[("torch", name, batch)], keras[("jax", name, batch)]
                row += f" {torch_speed:,.0f} | {jax_speed:,.0f} | {h / max(torch_speed, jax_speed):.2f}x |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
