"""Time to accuracy: `hubel train DATA --budget B` for each model and seed, each run in a process
of its own (one after another, never two at once: a second process slows the first), and a
table of test accuracy, steps trained, step time and the run's seconds from its result.json.

The budget is the whole command (imports, probe, training, validation, test pass, report); the
seconds are the run's own (result.json, from the process's start).

Run by hand (CIFAR-10 needs HUBEL_DATA_DIR=../shared/data/cifar10):
    .venv/bin/python benchmarks/time_to_accuracy.py mnist --budget 60 \
        --model fast_resnet_small --model fast_resnet --seeds 0 1 [--batch-size 64] [--lr 0.1 0.05] [--tta none] \
        [--precision float32 bf16] [--validation-split 0.1 0]

--lr, --precision and --validation-split take several values to compare; they alternate
innermost, so that a slower or faster minute of the machine falls on each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(data: str, model: str, budget: float, seed: int, out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "hubel", "train", data, "--model", model, "--budget", f"{budget:g}s",
               "--seed", str(seed), "--out", str(out), *extra]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.loads((out / "result.json").read_text())
    plan = result["budget"]
    return {
        "accuracy": result["test_accuracy"],
        "steps": plan["steps_taken"],
        "epochs": result["epochs_trained"],
        "ms_per_step": 1000 * plan.get("seconds_per_step_in_training", plan["seconds_per_step"]),
        "seconds": result["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds")
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--augment")
    parser.add_argument("--tta", default="auto")
    parser.add_argument("--lr", type=float, nargs="+", default=[None], help="peak rates to compare")
    parser.add_argument("--precision", nargs="+", default=[None], help="auto, float32, bf16: to compare")
    parser.add_argument("--validation-split", type=float, nargs="+", default=[None], help="fractions to compare")
    args = parser.parse_args()
    extra = ["--tta", args.tta]
    extra += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    extra += ["--augment", args.augment] if args.augment else []
    print(f"hubel train {args.data} --budget {args.budget:g}s {' '.join(extra)}")
    print("| model | --lr | --precision | --validation-split | seed | test | steps | epochs | ms/step | seconds |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.model:
            for rate in args.lr:
                for seed in args.seeds:
                    for precision, split in itertools.product(args.precision, args.validation_split):
                        options = extra + (["--lr", f"{rate:g}"] if rate else [])
                        options += ["--precision", precision] if precision else []
                        options += ["--validation-split", f"{split:g}"] if split is not None else []
                        out = Path(folder) / f"{model}-{rate}-{precision}-{split}-{seed}"
                        row = run(args.data, model, args.budget, seed, out, options)
                        cells = [model, rate or "recipe", precision or "auto", "default" if split is None else split]
                        cells += [seed, f"{row['accuracy']:.2%}", row["steps"], row["epochs"]]
                        cells += [f"{row['ms_per_step']:.0f}", f"{row['seconds']:.1f}"]
                        print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
