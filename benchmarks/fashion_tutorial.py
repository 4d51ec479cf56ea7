"""The Fashion-MNIST tutorial in Keras 3 and in hubel, the same code over several seeds: prints a table.

    .venv/bin/python benchmarks/fashion_tutorial.py                   # 3 seeds each, about 20 minutes on 2 cores
    .venv/bin/python benchmarks/fashion_tutorial.py --seeds 0 --epochs 1

The tutorial: Conv2D(64, 3, relu), MaxPooling2D(2), Conv2D(64, 3, relu), MaxPooling2D(2), Flatten,
Dense(128, relu), Dense(10, softmax); Adam, sparse categorical cross-entropy, 5 epochs, batch 32,
validation_split=0.2, pixels divided by 255. Runs alternate between the two (hubel seed 0, Keras
seed 0, hubel seed 1, ...), each in a fresh process. Fit times go to stderr with each run's
accuracies; this measures accuracy, not speed (benchmarks/train_speed.py races the two). The
Keras side runs this same file in .venv-keras (`make keras-venv`) with `--side keras`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KERAS_PYTHON = Path(__file__).resolve().parents[1] / ".venv-keras" / "bin" / "python"


def build(layers, model_class):  # type: ignore[no-untyped-def]
    """The tutorial network from a `layers` module, written once for both libraries."""
    return model_class(
        [
            layers.Conv2D(64, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D(2, 2),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D(2, 2),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def tutorial(library: str, data: Path, seed: int, epochs: int) -> dict:
    """One run of the tutorial in `library` ('hubel' or 'keras'); returns accuracies and time."""
    arrays = np.load(data)
    x_train, y_train = arrays["x_train"][..., None] / 255.0, arrays["y_train"]
    x_test, y_test = arrays["x_test"][..., None] / 255.0, arrays["y_test"]
    if library == "keras":
        import keras

        keras.utils.set_random_seed(seed)
        model = build(keras.layers, keras.Sequential)
    else:
        import hubel

        hubel.set_seed(seed)
        model = build(hubel.layers, hubel.Sequential)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_split=0.2, verbose=0)
    seconds = time.perf_counter() - start
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "val_accuracy": float(history.history["val_accuracy"][-1]),
        "test_accuracy": float(test_accuracy),
        "seconds": seconds,
    }


def run_side(library: str, data: Path, seed: int, epochs: int) -> dict:
    python = str(KERAS_PYTHON) if library == "keras" else sys.executable
    command = [python, __file__, "--side", library, "--data", str(data), "--seeds", str(seed), "--epochs", str(epochs)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{library} seed {seed} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--side", choices=["hubel", "keras"], help="internal: run one side in this process")
    parser.add_argument("--data", type=Path, help="internal: the arrays, as an .npz")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(tutorial(args.side, args.data, args.seeds[0], args.epochs)))
        return
    if not KERAS_PYTHON.exists():
        raise SystemExit(f"Keras's environment is missing: {KERAS_PYTHON}. Create it with `make keras-venv`.")
    import hubel

    (x_train, y_train), (x_test, y_test) = hubel.datasets.load("fashion_mnist")
    results: dict[str, list[dict]] = {"keras": [], "hubel": []}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "fashion_mnist.npz"
        np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        for seed in args.seeds:
            for library in ("hubel", "keras"):
                outcome = run_side(library, data, seed, args.epochs)
                results[library].append(outcome)
                print(f"{library} seed {seed}: {json.dumps(outcome)}", file=sys.stderr)

    print(f"Fashion-MNIST tutorial, {args.epochs} epochs, Adam, batch 32, validation_split=0.2, seeds {args.seeds}")
    print("| library | " + " | ".join(f"seed {s} test acc" for s in args.seeds) + " | mean test acc | mean val acc |")
    print("|---|" + "---:|" * (len(args.seeds) + 2))
    for library in ("keras", "hubel"):
        runs = results[library]
        cells = [f"{run['test_accuracy']:.2%}" for run in runs]
        mean_test = statistics.mean(run["test_accuracy"] for run in runs)
        mean_val = statistics.mean(run["val_accuracy"] for run in runs)
        print(f"| {library} | " + " | ".join(cells) + f" | {mean_test:.2%} | {mean_val:.2%} |")


if __name__ == "__main__":
    main()
