"""ONNX export: parity and inference throughput, ONNX Runtime against hubel's predict.

    .venv/bin/python benchmarks/export_speed.py                 # CIFAR-10 convnet and fashion_cnn, batch 256
    .venv/bin/python benchmarks/export_speed.py --rounds 7

Untrained zoo models (the speed does not depend on the weights), exported with `model.export`,
the parity checked on 256 random 0-255 inputs; then images per second at batch 256 for
`model.predict` (float32) and an ONNX Runtime session (CPU provider, default threads), rounds
interleaved, median reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import hubel
from hubel.models.zoo import create_model

MODELS = {"cifar_convnet": (32, 32, 3), "fashion_cnn": (28, 28, 1)}


def images_per_second(run, batch: np.ndarray, seconds: float = 1.0) -> float:
    run(batch)  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(batch)
        count += len(batch)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}")
    print("\n| model | max abs difference | hubel predict img/s | ONNX Runtime img/s | ONNX Runtime / hubel |")
    print("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for name, shape in MODELS.items():
        hubel.set_seed(0)
        model = create_model(name)
        batch = rng.integers(0, 256, (args.batch, *shape)).astype(np.float32)
        with tempfile.TemporaryDirectory() as folder:
            result = model.export(Path(folder) / f"{name}.onnx", sample=batch)
            session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
            predict = lambda x, model=model: model.predict(x, batch_size=args.batch)  # noqa: E731
            run_onnx = lambda x, session=session: session.run(None, {"input": x})  # noqa: E731
            ours, theirs = [], []
            for _ in range(args.rounds):
                ours.append(images_per_second(predict, batch))
                theirs.append(images_per_second(run_onnx, batch))
        hubel_speed, onnx_speed = statistics.median(ours), statistics.median(theirs)
        print(
            f"| {name} | {result.max_difference:.2e} | {hubel_speed:,.0f} | {onnx_speed:,.0f} | "
            f"{onnx_speed / hubel_speed:.2f}× |"
        )


if __name__ == "__main__":
    main()
