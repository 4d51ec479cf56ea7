"""What hubel's Keras boundary costs: a hubel Sequential against the same network written as a
plain torch.nn.Sequential, on the tutorials' Fashion-MNIST and CIFAR-10 networks.

Rows: plain torch on NCHW-contiguous input; plain torch in channels_last (weights and input);
hubel fed an NHWC float tensor (the free view into channels_last NCHW); hubel fed a uint8 NHWC
numpy batch (adds the uint8 -> float conversion). Each cell: images per second, median of
interleaved repeats, for inference (no_grad) and a training step (forward + backward).

Run by hand:  .venv/bin/python benchmarks/forward_speed.py [--repeats 5] [--batch 128]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import hubel
from hubel import layers as L


def fashion_hubel() -> hubel.Sequential:
    return hubel.Sequential(
        [
            L.Conv2D(64, 3, activation="relu", input_shape=(28, 28, 1)),
            L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(10),
        ]
    )


def fashion_torch() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def cifar_hubel() -> hubel.Sequential:
    return hubel.Sequential(
        [
            L.Conv2D(32, 3, activation="relu", input_shape=(32, 32, 3)),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.Flatten(),
            L.Dense(1024, activation="relu"),
            L.Dense(10),
        ]
    )


def cifar_torch() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 64, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    )


def images_per_second(step: Callable[[], object], batch: int, seconds: float) -> float:
    step()  # warm-up: first call picks kernels and allocates
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return count * batch / (time.perf_counter() - start)


def cases(make_hubel, make_torch, shape, batch):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(batch, *shape), dtype=np.uint8)  # NHWC uint8, as data arrives
    nhwc = torch.from_numpy(pixels).float()
    nchw = nhwc.permute(0, 3, 1, 2).contiguous()
    nchw_last = nchw.contiguous(memory_format=torch.channels_last)
    plain, plain_last, model = make_torch(), make_torch().to(memory_format=torch.channels_last), make_hubel()
    return {
        "torch NCHW": (plain, nchw),
        "torch channels_last": (plain_last, nchw_last),
        "hubel NHWC float tensor": (model, nhwc),
        "hubel NHWC uint8 numpy": (model, pixels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per cell and repeat")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    networks = {
        "fashion (243,786 params)": (fashion_hubel, fashion_torch, (28, 28, 1)),
        "cifar10 (703,594 params)": (cifar_hubel, cifar_torch, (32, 32, 3)),
    }
    print("| network | input | inference img/s | vs torch NCHW | train step img/s | vs torch NCHW |")
    print("|---|---|---:|---:|---:|---:|")
    for network, (make_hubel, make_torch, shape) in networks.items():
        runs = cases(make_hubel, make_torch, shape, args.batch)
        results: dict[str, dict[str, list[float]]] = {name: {"infer": [], "train": []} for name in runs}
        for _ in range(args.repeats):  # interleave so that drift hits every row alike
            for name, (model, data) in runs.items():

                def infer(model=model, data=data):
                    with torch.no_grad():
                        return model(data)

                def train(model=model, data=data):
                    model.zero_grad(set_to_none=True)
                    model(data).square().mean().backward()

                model.eval()
                results[name]["infer"].append(images_per_second(infer, args.batch, args.seconds))
                model.train()
                results[name]["train"].append(images_per_second(train, args.batch, args.seconds))
        base_infer = statistics.median(results["torch NCHW"]["infer"])
        base_train = statistics.median(results["torch NCHW"]["train"])
        for name, timing in results.items():
            infer, train = statistics.median(timing["infer"]), statistics.median(timing["train"])
            print(
                f"| {network} | {name} | {infer:,.0f} | {infer / base_infer:.2f}x | "
                f"{train:,.0f} | {train / base_train:.2f}x |"
            )


if __name__ == "__main__":
    main()
