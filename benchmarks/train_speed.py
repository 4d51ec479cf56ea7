"""Training throughput: hubel's fit against a hand-written PyTorch loop and Keras 3 on the same
network and data — the tutorials' Fashion-MNIST network (243,786 params) and CIFAR-10 network
(703,594 params), batch 32 and 128, synthetic in-memory data, steady state (after a warm-up
epoch), images per second, the median of --repeats interleaved rounds.

The PyTorch loop is written the fast way: model and data in channels_last, float32 data on
the device, slices of a shuffled index, logits with F.cross_entropy. hubel's model is what a
user writes: softmax output, "sparse_categorical_crossentropy", metrics=["accuracy"], NHWC
float32 numpy data. --precision bf16 runs hubel with compile(mixed_precision="bf16"), the
PyTorch loop under CPU autocast to bfloat16, and Keras with its "mixed_bfloat16" policy.

hubel sets glibc's allocator to keep freed blocks (hubel/train/allocator.py) when it places a
model, for the whole process; so that the in-process PyTorch loop runs under the same allocator,
the script sets it first. The column "PyTorch, glibc" is the same loop in a process of its own
with glibc's defaults, once per round: what a user's own loop gets.

Keras joins the table with --keras-python: the python of an environment holding keras and
tensorflow-cpu (keras_speed.py says how to make it); each backend of --keras-backends runs in
a process of its own, once per round, between the rounds of the others.

Run by hand:
    .venv/bin/python benchmarks/train_speed.py [--examples 4096] [--repeats 5] \
        [--keras-python .venv-keras/bin/python] [--keras-backends tensorflow] [--precision float32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import hubel
from hubel import layers as L
from hubel.train.allocator import keep_freed_blocks


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


def plain_pytorch(make, x_nhwc: np.ndarray, y: np.ndarray, batch: int, bf16: bool) -> float:
    model = make().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    x = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    labels = torch.from_numpy(y).long()

    def epoch() -> None:
        order = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x[index])
            loss = F.cross_entropy(logits.float(), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()  # warm-up
    start = time.perf_counter()
    epoch()
    return len(x) / (time.perf_counter() - start)


def hubel_fit(layers, x_nhwc: np.ndarray, y: np.ndarray, batch: int, bf16: bool) -> float:
    model = hubel.Sequential(layers())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  mixed_precision="bf16" if bf16 else None)  # fmt: skip
    model.fit(x_nhwc, y, batch_size=batch, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(x_nhwc, y, batch_size=batch, epochs=1, verbose=0)
    return len(x_nhwc) / (time.perf_counter() - start)


def keras_round(python: str, backend: str, examples: int, precision: str) -> dict[tuple[str, int], float]:
    """{(network, batch): images/s} of one keras_speed.py process (one repeat) on `backend`."""
    script = Path(__file__).with_name("keras_speed.py")
    result = subprocess.run(
        [python, str(script), "--examples", str(examples), "--repeats", "1", "--precision", precision],
        env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"keras_speed.py on {backend} failed:\n{result.stderr[-2000:]}")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {(row["network"], row["batch"]): row["images_per_second"] for row in rows}


def pytorch_round(examples: int, precision: str) -> dict[tuple[str, int], float]:
    """{(network, batch): images/s} of the PyTorch loop in a process of its own, glibc's defaults."""
    command = [sys.executable, __file__, "--pytorch-only", "--examples", str(examples), "--precision", precision]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the PyTorch loop's own process failed:\n{result.stderr[-2000:]}")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {(row["network"], row["batch"]): row["images_per_second"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keras-python", help="python of the Keras environment (see keras_speed.py)")
    parser.add_argument("--keras-backends", default="tensorflow", help="comma-separated: tensorflow,torch,jax")
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    parser.add_argument("--pytorch-only", action="store_true", help=argparse.SUPPRESS)  # pytorch_round's process
    args = parser.parse_args()
    bf16 = args.precision == "bf16"
    backends = [b for b in args.keras_backends.split(",") if b] if args.keras_python else []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.examples} examples per timed epoch, "
          f"{args.precision}, median of {args.repeats} interleaved rounds")  # fmt: skip
    rng = np.random.default_rng(0)
    networks = {
        "Fashion-MNIST network": (fashion_layers, fashion_torch, (28, 28, 1)),
        "CIFAR-10 network": (cifar_layers, cifar_torch, (32, 32, 3)),
    }
    data = {}
    for name, (_, _, shape) in networks.items():
        data[name] = (rng.random((args.examples, *shape), dtype=np.float32),
                      rng.integers(0, 10, args.examples).astype(np.int64))  # fmt: skip
    if args.pytorch_only:
        for name, (_, make, _) in networks.items():
            for batch in (32, 128):
                speed = plain_pytorch(make, *data[name], batch, bf16)
                print(json.dumps({"network": name, "batch": batch, "images_per_second": speed}), flush=True)
        return
    keep_freed_blocks()
    speeds: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(args.repeats):  # interleaved rounds, so drift hits every contender alike
        for backend in backends:
            for (name, batch), value in keras_round(args.keras_python, backend, args.examples, args.precision).items():
                speeds.setdefault((f"Keras-{backend}", name, batch), []).append(value)
        for (name, batch), value in pytorch_round(args.examples, args.precision).items():
            speeds.setdefault(("PyTorch, glibc", name, batch), []).append(value)
        for name, (layers, make, _) in networks.items():
            x, y = data[name]
            for batch in (32, 128):
                speeds.setdefault(("PyTorch", name, batch), []).append(plain_pytorch(make, x, y, batch, bf16))
                speeds.setdefault(("hubel", name, batch), []).append(hubel_fit(layers, x, y, batch, bf16))
    median = {key: statistics.median(values) for key, values in speeds.items()}
    keras_columns = [f"Keras-{backend}" for backend in backends]
    header = ["network", "batch", "PyTorch loop", "PyTorch, glibc", "hubel", *keras_columns, "hubel / PyTorch"]
    header += ["hubel / PyTorch, glibc", *(f"hubel / {column}" for column in keras_columns)]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for name in networks:
        for batch in (32, 128):
            plain, ours = median[("PyTorch", name, batch)], median[("hubel", name, batch)]
            others = [median[(column, name, batch)] for column in ["PyTorch, glibc", *keras_columns]]
            cells = [name, str(batch), f"{plain:,.0f}", f"{others[0]:,.0f}", f"{ours:,.0f}"]
            cells += [*(f"{v:,.0f}" for v in others[1:]), f"{ours / plain:.2f}x", *(f"{ours / v:.2f}x" for v in others)]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
