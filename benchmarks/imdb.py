"""IMDB: load times, the tutorial's 1D convnet in Keras and in hubel, and the text models of `hubel train`.

    HUBEL_DATA_DIR=../shared/data .venv/bin/python benchmarks/imdb.py            # about 15 minutes on 2 cores
    HUBEL_DATA_DIR=../shared/data .venv/bin/python benchmarks/imdb.py --skip-keras --epochs 2

1. `hubel.datasets.imdb.load_data(num_words=10000)` from the raw reviews, in fresh processes:
   the first call (an empty cache: read the tarball, tokenise, cache) and a cached call.
2. The tutorial (Embedding(10000, 128), Conv1D(32, 7), MaxPooling1D(5), Conv1D(32, 7),
   GlobalMaxPooling1D, Dense(1); RMSprop 1e-4, binary cross-entropy, batch 128,
   validation_split=0.2, 10 epochs, 500 tokens) in hubel and in Keras 3 (.venv-keras), on the
   same arrays: validation accuracy per epoch and seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KERAS_PYTHON = Path(__file__).resolve().parents[1] / ".venv-keras" / "bin" / "python"


def load_times() -> list[tuple[str, float]]:
    code = (
        "import time; t = time.perf_counter(); import hubel; "
        "hubel.datasets.imdb.load_data(num_words=10000); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "HUBEL_CACHE_DIR": cache}
        rows = []
        for label in ("first call (empty cache)", "cached call"):
            output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
            if output.returncode:
                raise SystemExit(output.stderr[-2000:])
            rows.append((label, float(output.stdout.split()[-1])))
    return rows


def tutorial(library: str, data: Path, epochs: int) -> dict:
    """The tutorial's fit in `library`; returns History and seconds per epoch."""
    arrays = np.load(data)
    x, y = arrays["x"], arrays["y"]
    if library == "keras":
        import keras
        from keras import layers

        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((500,), dtype="int32"),
                layers.Embedding(10000, 128),
                layers.Conv1D(32, 7, activation="relu"),
                layers.MaxPooling1D(5),
                layers.Conv1D(32, 7, activation="relu"),
                layers.GlobalMaxPooling1D(),
                layers.Dense(1),
            ]
        )
        optimizer = keras.optimizers.RMSprop(learning_rate=1e-4)
    else:
        import hubel

        hubel.set_seed(0)
        model = hubel.models.zoo.create_model("imdb_conv1d", num_classes=2)
        optimizer = hubel.optimizers.RMSprop(learning_rate=1e-4)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["acc"])
    times = []

    class Clock:  # an epoch timer in each library's callback style
        def on_epoch_begin(self, *_):
            self.start = time.perf_counter()

        def on_epoch_end(self, *_):
            times.append(time.perf_counter() - self.start)

    if library == "keras":
        import keras

        callback = type("KerasClock", (Clock, keras.callbacks.Callback), {})()
    else:
        import hubel

        callback = type("HubelClock", (Clock, hubel.callbacks.Callback), {})()
    history = model.fit(x, y, epochs=epochs, batch_size=128, validation_split=0.2, verbose=0, callbacks=[callback])
    return {"val_acc": [float(v) for v in history.history["val_acc"]], "seconds": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-keras", action="store_true")
    parser.add_argument("--side", choices=["hubel", "keras"], help="internal: run one side of 2.")
    parser.add_argument("--data", type=Path, help="internal: the padded arrays")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(tutorial(args.side, args.data, args.epochs)))
        return
    import hubel

    print("## 1. load_data(num_words=10000) from the raw reviews (fresh processes, import included)\n")
    print("| call | seconds |\n|---|---:|")
    for label, seconds in load_times():
        print(f"| {label} | {seconds:.1f} |")

    (x_train, y_train), _ = hubel.datasets.imdb.load_data(num_words=10000)
    x = hubel.data.pad_sequences(x_train, maxlen=500)
    libraries = ["hubel"] if args.skip_keras else ["hubel", "keras"]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "imdb.npz"
        np.savez(data, x=x, y=y_train)
        for library in libraries:
            python = str(KERAS_PYTHON) if library == "keras" else sys.executable
            command = [python, __file__, "--side", library, "--data", str(data), "--epochs", str(args.epochs)]
            output = subprocess.run(command, capture_output=True, text=True)
            if output.returncode:
                raise SystemExit(f"{library} failed:\n{output.stderr[-2000:]}")
            results[library] = json.loads(output.stdout.strip().splitlines()[-1])
    print(f"\n## 2. The tutorial's 1D convnet, {args.epochs} epochs (validation accuracy; seconds per epoch)\n")
    print("| epoch | " + " | ".join(f"{lib} val_acc | {lib} s" for lib in libraries) + " |")
    print("|---:|" + "---:|---:|" * len(libraries))
    for epoch in range(args.epochs):
        cells = [f"{results[lib]['val_acc'][epoch]:.4f} | {results[lib]['seconds'][epoch]:.1f}" for lib in libraries]
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    for lib in libraries:
        seconds = results[lib]["seconds"]
        print(f"\n{lib}: best val_acc {max(results[lib]['val_acc']):.4f}, median epoch {np.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
