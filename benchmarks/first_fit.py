"""What a fresh process pays for its first fit: the Fashion-MNIST tutorial network's import,
first fit (8 steps at batch 32, the optimizer built on the way) and second fit, in fresh
processes, one source tree against another, alternating; and the wall clock of
`hubel train digits --epochs 1` through each tree. Median (range) in seconds.

Run by hand:  .venv/bin/python benchmarks/first_fit.py --tree before=/path/to/old/src --tree after=src [--rounds 5]
(one --tree: that tree alone; `git worktree add /tmp/old COMMIT` gives an old tree's src/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT = """
import json, time
started = time.perf_counter()
import numpy as np
from hubel import layers as L
from hubel.models import Sequential
imported = time.perf_counter()
network = Sequential([L.Input((28, 28, 1)), L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
                      L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                      L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")])
network.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
x, y = np.random.default_rng(0).random((256, 28, 28, 1), dtype=np.float32), np.arange(256) % 10
times = [time.perf_counter()]
for _ in range(2):
    network.fit(x, y, epochs=1, batch_size=32, verbose=0)
    times.append(time.perf_counter())
print(json.dumps({"import": imported - started, "first fit": times[1] - times[0], "second fit": times[2] - times[1]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=SRC_DIR (a tree's src/)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.tree)
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        for _ in range(args.rounds):
            for name, source in trees.items():
                env = {**os.environ, "PYTHONPATH": str(Path(source).resolve())}
                fit = subprocess.run([sys.executable, "-c", FIT], env=env, check=True, capture_output=True, text=True)
                for phase, seconds in json.loads(fit.stdout.splitlines()[-1]).items():
                    figures[name].setdefault(phase, []).append(seconds)
                shutil.rmtree(run, ignore_errors=True)
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "hubel", "train", "digits", "--epochs", "1", "--out", str(run)],
                               env=env, check=True, capture_output=True)  # fmt: skip
                figures[name].setdefault("hubel train digits --epochs 1", []).append(time.perf_counter() - start)
    print_medians(figures, args.rounds)


def print_medians(figures: dict[str, dict[str, list[float]]], rounds: int) -> None:
    """A table of seconds, a row per phase and a column per tree: median (range) over the rounds."""
    print(f"{rounds} rounds, seconds: median (range)\n")
    print("| | " + " | ".join(figures) + " |")
    print("|---|" + "---:|" * len(figures))
    for phase in next(iter(figures.values())):
        cells = [
            f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})"
            for t in (times[phase] for times in figures.values())
        ]
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
