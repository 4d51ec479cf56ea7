"""Inference throughput on a test set: `hubel evaluate` (hubel.runs.evaluate) on each engine, and
model.predict, against a bare ONNX Runtime session — the CIFAR-10 tutorial convnet
(cifar_convnet, 703,594 params; untrained: speed does not depend on the weights) on the 10,000
CIFAR-10 test images, batch 256, median of --repeats interleaved rounds.

For evaluate, two times: the whole call (loading the model and the 10,000 images, the engine's
start, the pass, the metrics, the confusion-matrix PNG) and the inference alone (its result's
`seconds`: the engine's start — for ONNX Runtime the parity-checked export — and the pass in
batches of 256). The bare session is the ceiling: the exported graph over the same batches.

Run by hand (CIFAR-10 from ../shared/data or $HUBEL_DATA_DIR):
    HUBEL_DATA_DIR=../shared/data/cifar10 .venv/bin/python benchmarks/evaluate_speed.py [--repeats 3]
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
from export_speed import public_operators

import hubel
from hubel.models.zoo import create_model
from hubel.runs import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="cifar_convnet")
    args = parser.parse_args()
    _, (x_test, _) = hubel.datasets.load("cifar10")
    folder = Path(tempfile.mkdtemp(prefix="hubel-evaluate-speed-"))
    model = create_model(args.model, 10, x_test.shape[1:])
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    model.save(folder / "model.hubel", metadata={"class_names": names})
    model.export(folder / "model.onnx")
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    batches = [x_test[i : i + 256] for i in range(0, len(x_test), 256)]

    def bare_session() -> None:
        for batch in batches:
            session.run(None, {"input": batch.astype(np.float32)})

    inference: dict[str, list[float]] = {}
    engines: dict[str, set[str]] = {}  # what each evaluate row ran on: auto decides per call

    def hubel_evaluate(engine: str, name: str) -> None:
        result = evaluate(folder / "model.hubel", "cifar10", engine=engine)
        inference.setdefault(name, []).append(result["seconds"])
        engines.setdefault(name, set()).add(result["engine"])

    def public_predict() -> None:
        with public_operators():  # the layers without hubel.layers.inference's paths
            model.predict(x_test, batch_size=256)

    contenders = {
        "ONNX Runtime session (bare)": bare_session,
        "model.predict (PyTorch)": lambda: model.predict(x_test, batch_size=256),
        "model.predict, public operators": public_predict,
        "hubel evaluate --engine torch": lambda: hubel_evaluate("torch", "hubel evaluate --engine torch"),
        "hubel evaluate (auto)": lambda: hubel_evaluate("auto", "hubel evaluate (auto)"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run()  # warm-up: imports, kernel choice
    inference.clear()
    engines.clear()
    for _ in range(args.repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    print(f"{args.model}, {len(x_test):,} CIFAR-10 test images, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), onnxruntime {onnxruntime.__version__}, median of {args.repeats}")  # fmt: skip
    ceiling = len(x_test) / statistics.median(seconds["ONNX Runtime session (bare)"])
    print("| what | whole call s | inference s | inference images/s | of the bare session |")
    print("|---|---:|---:|---:|---:|")
    for name, values in seconds.items():
        alone = statistics.median(inference.get(name, values))
        speed = len(x_test) / alone
        print(f"| {name} | {statistics.median(values):.2f} | {alone:.2f} | {speed:,.0f} | {speed / ceiling:.2f}x |")
    for name, used in engines.items():
        print(f"{name}: {'; '.join(sorted(used))}")


if __name__ == "__main__":
    main()
