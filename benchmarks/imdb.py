"""IMDB: load times, the tutorial's 1D convnet in Keras and in hubel, and the text models of `hubel train`.

    HUBEL_DATA_DIR=../shared/data .venv/bin/python benchmarks/imdb.py            # about 15 minutes on 2 cores
    HUBEL_DATA_DIR=../shared/data .venv/bin/python benchmarks/imdb.py --section tutorial --seeds 1 2

1. `hubel.datasets.imdb.load_data(num_words=10000)` from the raw reviews, in fresh processes:
   the first call (an empty cache: read the tarball, tokenise, cache) and a cached call.
2. The tutorial (Embedding(10000, 128), Conv1D(32, 7), MaxPooling1D(5), Conv1D(32, 7),
   GlobalMaxPooling1D, Dense(1); RMSprop 1e-4, binary cross-entropy, batch 128,
   validation_split=0.2, 10 epochs, 500 tokens) in hubel and in Keras 3 (.venv-keras), on the
   same arrays, seeds 0, 1 and 2: validation accuracy per epoch and seconds per epoch.
3. Candidates for `hubel train imdb`'s default, each behind a TextVectorization adapted on the
   training reviews, Adam, 6 epochs, batch 64: test accuracy after each epoch, seconds per epoch
   (`--section models` runs this part alone).
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


def tutorial(library: str, data: Path, epochs: int, seed: int) -> dict:
    """The tutorial's fit in `library`; returns History and seconds per epoch."""
    arrays = np.load(data)
    x, y = arrays["x"], arrays["y"]
    if library == "keras":
        import keras
        from keras import layers

        keras.utils.set_random_seed(seed)
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

        hubel.set_seed(seed)
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


CANDIDATES = {  # name: (max_tokens, sequence length, ngrams, layers after the vectorizer, learning rate)
    "words averaged": (20_000, 400, None, lambda L: [L.Embedding(20_000, 32), L.GlobalAveragePooling1D()], 3e-3),
    "words + pairs averaged (ngram_bag)": (
        50_000, 800, 2, lambda L: [L.Embedding(50_000, 32), L.GlobalAveragePooling1D()], 3e-3
    ),
    "words, Conv1D(128, 3), max": (
        20_000, 500, None,
        lambda L: [L.Embedding(20_000, 64), L.Conv1D(128, 3, activation="relu"), L.GlobalMaxPooling1D()], 1e-3,
    ),
}  # fmt: skip


def candidates(epochs: int = 6) -> None:
    import hubel
    from hubel import layers as L

    (texts, labels), (test_texts, test_labels) = hubel.datasets.imdb.load_texts()
    print(f"\n## 3. Text models behind a TextVectorization, Adam, batch 64, {epochs} epochs\n")
    print("| model | params | vectorize s | s/epoch | " + " | ".join(f"test acc {e + 1}" for e in range(epochs)) + " |")
    print("|---|---:|---:|---:|" + "---:|" * epochs)
    for name, (max_tokens, length, ngrams, body, rate) in CANDIDATES.items():
        hubel.set_seed(0)
        start = time.perf_counter()
        vectorize = L.TextVectorization(max_tokens=max_tokens, output_sequence_length=length, ngrams=ngrams)
        vectorize.adapt(texts)
        x, x_test = vectorize(texts), vectorize(test_texts)
        prepared = time.perf_counter() - start
        model = hubel.Sequential([L.Input((length,), dtype="int64"), *body(L), L.Dense(1, activation="sigmoid")])
        model.compile(optimizer=hubel.optimizers.Adam(rate), loss="binary_crossentropy", metrics=["accuracy"])
        accuracies, seconds = [], []
        for _ in range(epochs):
            start = time.perf_counter()
            model.fit(x, labels, batch_size=64, epochs=1, verbose=0)
            seconds.append(time.perf_counter() - start)
            accuracies.append(model.evaluate(x_test, test_labels, batch_size=512, verbose=0)[1])
        cells = " | ".join(f"{a:.2%}" for a in accuracies)
        print(
            f"| {name} | {model.count_params():,} | {prepared:.0f} | {np.median(seconds):.1f} | {cells} |", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of part 2")
    parser.add_argument("--skip-keras", action="store_true")
    parser.add_argument("--section", choices=["all", "load", "tutorial", "models"], default="all")
    parser.add_argument("--side", choices=["hubel", "keras"], help="internal: run one side of part 2")
    parser.add_argument("--data", type=Path, help="internal: the padded arrays")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(tutorial(args.side, args.data, args.epochs, args.seeds[0])))
        return
    if args.section in ("all", "load"):
        print("## 1. load_data(num_words=10000) from the raw reviews (fresh processes, import included)\n")
        print("| call | seconds |\n|---|---:|")
        for label, seconds in load_times():
            print(f"| {label} | {seconds:.1f} |")
    if args.section in ("all", "tutorial"):
        tutorial_table(["hubel"] if args.skip_keras else ["hubel", "keras"], args.seeds, args.epochs)
    if args.section in ("all", "models"):
        candidates()


def tutorial_table(libraries: list[str], seeds: list[int], epochs: int) -> None:
    import hubel

    (x_train, y_train), _ = hubel.datasets.imdb.load_data(num_words=10000)
    x = hubel.data.pad_sequences(x_train, maxlen=500)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "imdb.npz"
        np.savez(data, x=x, y=y_train)
        for seed in seeds:
            for library in libraries:
                python = str(KERAS_PYTHON) if library == "keras" else sys.executable
                command = [python, __file__, "--side", library, "--data", str(data), "--epochs", str(epochs),
                           "--seeds", str(seed)]  # fmt: skip
                output = subprocess.run(command, capture_output=True, text=True)
                if output.returncode:
                    raise SystemExit(f"{library} failed:\n{output.stderr[-2000:]}")
                results[library, seed] = json.loads(output.stdout.strip().splitlines()[-1])
    first = seeds[0]
    print(f"\n## 2. The tutorial's 1D convnet, {epochs} epochs, seed {first}: validation accuracy, seconds\n")
    print("| epoch | " + " | ".join(f"{lib} val_acc | {lib} s" for lib in libraries) + " |")
    print("|---:|" + "---:|---:|" * len(libraries))
    for epoch in range(epochs):
        cells = [
            f"{results[lib, first]['val_acc'][epoch]:.4f} | {results[lib, first]['seconds'][epoch]:.1f}"
            for lib in libraries
        ]
        print(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    print("\n| library | seed | val_acc after epoch 1 | final val_acc | best val_acc | median s/epoch |")
    print("|---|---:|---:|---:|---:|---:|")
    for lib in libraries:
        for seed in seeds:
            run = results[lib, seed]
            print(
                f"| {lib} | {seed} | {run['val_acc'][0]:.4f} | {run['val_acc'][-1]:.4f} | {max(run['val_acc']):.4f} "
                f"| {np.median(run['seconds']):.1f} |"
            )


if __name__ == "__main__":
    main()
