"""What the HTML report of a run costs: importing its module (matplotlib among it), the whole
`report()` call the first and the second time in a process, and each of its figures drawn and
encoded, in fresh processes, one source tree against another, alternating. Median (range) in
seconds. The run's test outputs are computed once per process beforehand, as `hubel train`
hands them over from its test pass.

Run by hand:  .venv/bin/python benchmarks/report_speed.py --tree before=/path/to/old/src --tree after=src
                  [--run runs/NAME] [--rounds 5]
(without --run, a `hubel train mnist --budget 30s` run is made first, in a temporary folder;
`git worktree add /tmp/old COMMIT` gives an old tree's src/).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from first_fit import print_medians

REPORT = """
import json, sys, time
import numpy as np
from hubel.models.io import load_model
from hubel.runs.setup import _load_data
from hubel.train.history import History
import yaml

run = sys.argv[1]
network = load_model(f"{run}/model.hubel")
config = yaml.safe_load(open(f"{run}/config.yaml"))
steps = network.metadata.get("history") or {}
history = History(steps, list(range(len(next(iter(steps.values()), [])))), steps=network.metadata.get("history_steps"))
x, y = _load_data(config["data"], tuple(network.input_shape[1:3]), 256, 0, verbose=False)["test"]
outputs = network.predict(x, batch_size=256)
times = {}
start = time.perf_counter()
from hubel.inspect import confusion
from hubel.inspect.filters import show_feature_maps, show_filters
from hubel.inspect.plots import plot_history
from hubel.inspect import report as _
report_module = sys.modules["hubel.inspect.report"]
times["import"] = time.perf_counter() - start
for call in ("report(), first", "report(), second"):
    start = time.perf_counter()
    report_module.report(network, history, (x, y), path=f"{sys.argv[2]}/report.html", outputs=outputs)
    times[call] = time.perf_counter() - start
labels, predicted = np.asarray(y), outputs.argmax(axis=1)
counts = confusion.confusion_matrix(labels, predicted, outputs.shape[1])
names = [str(index) for index in range(outputs.shape[1])]
figures = {
    "training curves": lambda: plot_history(history),
    "confusion matrix": lambda: confusion.plot_confusion_matrix(counts, names),
    "worst predictions": lambda: confusion.show_top_losses(x, outputs, labels, names, n=10),
    "first-layer filters": lambda: show_filters(network),
    "feature maps": lambda: show_feature_maps(network, x[0], max_maps=32),
}
for name, figure in figures.items():
    start = time.perf_counter()
    report_module._png(figure())
    times[name] = time.perf_counter() - start
start = time.perf_counter()
report_module._pictures_sections(network, x, labels, predicted, names)
times["Grad-CAM, filters, feature maps"] = time.perf_counter() - start
print(json.dumps(times))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=SRC_DIR (a tree's src/)")
    parser.add_argument("--run", help="a finished run directory (default: a `hubel train mnist --budget 30s` run)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.tree)
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    with tempfile.TemporaryDirectory() as folder:
        run = args.run
        if run is None:
            run = str(Path(folder) / "run")
            subprocess.run([sys.executable, "-m", "hubel", "train", "mnist", "--budget", "30s", "--out", run],
                           check=True, capture_output=True)  # fmt: skip
        for _ in range(args.rounds):
            for name, source in trees.items():
                env = {**os.environ, "PYTHONPATH": str(Path(source).resolve())}
                done = subprocess.run([sys.executable, "-c", REPORT, run, folder], env=env, check=True,
                                      capture_output=True, text=True)  # fmt: skip
                for phase, seconds in json.loads(done.stdout.splitlines()[-1]).items():
                    figures[name].setdefault(phase, []).append(seconds)
    print_medians(figures, args.rounds)


if __name__ == "__main__":
    main()
