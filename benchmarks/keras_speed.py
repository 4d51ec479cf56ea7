"""Keras 3 side of train_speed.py: the same two networks trained with Keras's own fit, one
backend per process (KERAS_BACKEND must be set before keras is imported). Prints one JSON
line per (network, batch) with images per second.

It runs in an environment of its own, kept apart from hubel's:

    python3 -m venv .venv-keras
    .venv-keras/bin/pip install keras tensorflow-cpu   # Keras's default backend
    # for --keras-backends torch,jax as well: .venv-keras/bin/pip install torch==2.13.0 jax

Run through train_speed.py (--keras-python .venv-keras/bin/python), or alone:
    KERAS_BACKEND=tensorflow .venv-keras/bin/python benchmarks/keras_speed.py --examples 4096 [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def networks(keras):  # type: ignore[no-untyped-def]
    layers = keras.layers
    fashion = [
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]
    cifar = [
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(1024, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]
    return {"Fashion-MNIST network": (fashion, (28, 28, 1)), "CIFAR-10 network": (cifar, (32, 32, 3))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", choices=("float32", "bf16"), default="float32")
    args = parser.parse_args()
    import keras

    if args.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    rng = np.random.default_rng(0)
    for name, (_, shape) in networks(keras).items():
        x = rng.random((args.examples, *shape), dtype=np.float32)
        y = rng.integers(0, 10, args.examples)
        for batch in (32, 128):
            speeds = []
            for _ in range(args.repeats):
                model = keras.Sequential(networks(keras)[name][0])  # fresh layers for every repeat
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up (and compilation)
                start = time.perf_counter()
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
                speeds.append(args.examples / (time.perf_counter() - start))
            speeds.sort()
            print(
                json.dumps(
                    {
                        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
                        "network": name,
                        "batch": batch,
                        "images_per_second": speeds[len(speeds) // 2],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
