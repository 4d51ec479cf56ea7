"""The optimizer step: hubel's Keras update rules (train/update_rules.py) against the torch.optim
optimizers hubel used before, on the parameters of the zoo's networks (fast_resnet, the CIFAR-10
tutorial convnet), gradients fixed, steps timed alone and interleaved, median of rounds.

Run by hand:
    .venv/bin/python benchmarks/optimizer_speed.py [--steps 200] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hubel.models.zoo import create_model
from hubel.train import SGD, Adam, RMSprop


def candidates(parameters):
    """(name, torch.optim as hubel used it, hubel's Keras rule) with the same settings."""
    return [
        (
            "SGD momentum 0.9 nesterov",
            torch.optim.SGD(parameters, lr=0.01, momentum=0.9, nesterov=True),
            SGD(0.01, momentum=0.9, nesterov=True).build(parameters).torch,
        ),
        ("Adam", torch.optim.Adam(parameters, lr=1e-3, eps=1e-7), Adam().build(parameters).torch),
        ("RMSprop", torch.optim.RMSprop(parameters, lr=1e-3, alpha=0.9, eps=1e-7), RMSprop().build(parameters).torch),
    ]


def time_steps(optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1e6  # µs per step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    print("| network | params | optimizer | torch.optim µs/step | hubel (Keras rule) µs/step | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, shape in (("fast_resnet", (28, 28, 1)), ("cifar_convnet", (32, 32, 3))):
        model = create_model(name, input_shape=shape, num_classes=10)
        parameters = [p for p in model.parameters() if p.requires_grad]
        for p in parameters:
            p.grad = torch.randn_like(p) * 1e-3
        count = sum(p.numel() for p in parameters)
        for label, theirs, ours in candidates(parameters):
            for optimizer in (theirs, ours):
                time_steps(optimizer, 5)  # state created, caches warm
            times: dict[str, list[float]] = {"torch": [], "hubel": []}
            for _ in range(arguments.rounds):
                times["torch"].append(time_steps(theirs, arguments.steps))
                times["hubel"].append(time_steps(ours, arguments.steps))
            before, after = statistics.median(times["torch"]), statistics.median(times["hubel"])
            print(f"| {name} | {count:,} | {label} | {before:,.0f} | {after:,.0f} | {after / before:.2f}× |")


if __name__ == "__main__":
    main()
