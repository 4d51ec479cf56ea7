"""ONNX export: parity and inference throughput, ONNX Runtime against hubel's predict.

    .venv/bin/python benchmarks/export_speed.py                 # CIFAR-10 convnet, fashion_cnn, airbench_small
    .venv/bin/python benchmarks/export_speed.py --rounds 7

Untrained zoo models (the speed does not depend on the weights), exported with `model.export`,
the parity checked on 256 random 0-255 inputs; then images per second at batch 256 for
`model.predict` (float32; airbench's whitening layer fitted to the batch first), for
`model.predict` on torch's public operators alone (what the layers ran before
hubel.layers.inference: `F.max_pool2d`, `F.linear`, `F.conv2d`), and for an ONNX Runtime session
(CPU provider, default threads), rounds interleaved, median reported.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import hubel
from hubel.layers import conv, core, pooling
from hubel.models.zoo import create_model

MODELS = {"cifar_convnet": (32, 32, 3), "fashion_cnn": (28, 28, 1), "airbench_small": (32, 32, 3)}


@contextlib.contextmanager
def public_operators():
    """The layers without hubel.layers.inference's paths: each of them declines."""
    saved = conv.conv2d_for_inference, core.linear_for_inference, pooling.max_pool_for_inference
    conv.conv2d_for_inference = core.linear_for_inference = pooling.max_pool_for_inference = lambda *args: None
    try:
        yield
    finally:
        conv.conv2d_for_inference, core.linear_for_inference, pooling.max_pool_for_inference = saved


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
    print(
        "\n| model | ONNX max abs difference | predict, public operators img/s | predict img/s | ONNX Runtime img/s "
        "| public / ONNX Runtime | predict / ONNX Runtime |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    differences = {}
    for name, shape in MODELS.items():
        hubel.set_seed(0)
        model = create_model(name)
        batch = rng.integers(0, 256, (args.batch, *shape)).astype(np.float32)
        model.adapt(batch)  # airbench's whitening layer, fitted to the batch (untrained, it is all zeros)
        with tempfile.TemporaryDirectory() as folder:
            result = model.export(Path(folder) / f"{name}.onnx", sample=batch)
            session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
            predict = lambda x, model=model: model.predict(x, batch_size=args.batch)  # noqa: E731
            run_onnx = lambda x, session=session: session.run(None, {"input": x})  # noqa: E731
            with public_operators():
                public_outputs = predict(batch)
            differences[name] = float(np.abs(public_outputs - predict(batch)).max())
            public, ours, theirs = [], [], []
            for _ in range(args.rounds):
                with public_operators():
                    public.append(images_per_second(predict, batch))
                ours.append(images_per_second(predict, batch))
                theirs.append(images_per_second(run_onnx, batch))
        public_speed, hubel_speed = statistics.median(public), statistics.median(ours)
        onnx_speed = statistics.median(theirs)
        print(
            f"| {name} | {result.max_difference:.2e} | {public_speed:,.0f} | {hubel_speed:,.0f} | {onnx_speed:,.0f} "
            f"| {public_speed / onnx_speed:.2f}× | {hubel_speed / onnx_speed:.2f}× |"
        )
    print("\npredict against predict on the public operators, largest difference: ", end="")
    print(", ".join(f"{name} {difference:.2e}" for name, difference in differences.items()))


if __name__ == "__main__":
    main()
