"""Transfer learning on the cats-vs-dogs photos (../shared/data/cats_and_dogs): prints tables.

    .venv/bin/python benchmarks/transfer.py                                 # about 8 minutes on 2 cores
    .venv/bin/python benchmarks/transfer.py --backbone efficientnet_lite0   # another backbone
    .venv/bin/python benchmarks/transfer.py --defaults --budgets 25s 40s    # `hubel train FOLDER`, no --model
    .venv/bin/python benchmarks/transfer.py --defaults --scratch            # + snacks_convnet (9 minutes)

1. The feature pass (MobileNetV2, frozen) in images/s, batch 8 against batch 64, in one run.
2. Inference of the trained model, batch 32 as given against 32 split in chunks of 8.
3. `hubel train FOLDER --model mobilenet_v2` (and --fine-tune): wall time and accuracy on
   validation/, from a cold feature cache.
4. The pretrained ImageNet top on 20 cat and 20 dog photos: how many land in ImageNet's cat
   classes (281-285) and dog classes (151-268).
5. The Keras tutorial's functional head: parameter count.

With --defaults, only: `hubel train FOLDER` without --model (transfer learning from mobilenet_v2),
then with each --budgets value (the input size its plan chose), from cold caches, in one table; with
--scratch also `--model snacks_convnet`, the default for a folder before transfer learning was.
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
from PIL import Image

import hubel
from hubel import applications
from hubel import layers as L
from hubel.train import trainer

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats_and_dogs"
HUBEL = str(Path(sys.executable).with_name("hubel"))


def photos(kind: str, count: int, size: int = 224) -> np.ndarray:
    files = sorted((ROOT / "validation" / kind).glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in files])


def feature_pass(backbone: str) -> None:
    extractor = applications.feature_extractor(backbone)
    images = np.concatenate([photos("cats", 48), photos("dogs", 48)])
    applications.extract_features(extractor, images[:8], cache=False, verbose=False)  # warm-up
    print(f"| feature pass, {backbone} 224x224, 96 photos | img/s |\n|---|---:|")
    for batch in (8, 64, 8, 64):
        start = time.perf_counter()
        applications.extract_features(extractor, images, batch_size=batch, cache=False, verbose=False)
        print(f"| batch {batch} | {len(images) / (time.perf_counter() - start):.1f} |")


def chunked_inference(model_path: Path) -> None:
    model = hubel.load_model(model_path)
    images = np.concatenate([photos("cats", 48), photos("dogs", 48)])
    model.predict(images[:8])
    print("\n| predict, batch_size=32, 96 photos | img/s |\n|---|---:|")
    for _round in range(2):
        for label, threshold in (("whole batches of 32", 10**12), ("chunks of 8 (hubel's default)", 100_000)):
            trainer._LARGE_EXAMPLE = threshold
            start = time.perf_counter()
            model.predict(images, batch_size=32)
            print(f"| {label} | {len(images) / (time.perf_counter() - start):.1f} |")
    trainer._LARGE_EXAMPLE = 100_000


def train_runs(workdir: Path, backbone: str) -> Path:
    print("\n| command (cold feature cache) | wall s | validation accuracy | feature img/s |\n|---|---:|---:|---:|")
    first = None
    for extra in ([], ["--fine-tune"]):
        out = workdir / ("fine-tune" if extra else "head")
        command = [HUBEL, "train", str(ROOT), "--model", backbone, "--out", str(out), *extra]
        environment = {**os.environ, "HUBEL_CACHE_DIR": str(workdir / f"cache-{out.name}")}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        result = json.loads((out / "result.json").read_text())
        shown = " ".join([f"hubel train cats_and_dogs --model {backbone}", *extra])
        rate = result["feature_images_per_second"]
        print(f"| `{shown}` | {seconds:.0f} | {result['test_accuracy']:.4f} | {rate:.0f} |")
        first = first or out / "model.hubel"
    return first


def default_runs(workdir: Path, budgets: list[str], scratch: bool) -> None:
    print(
        "| command (cold caches) | model | input | wall s | validation accuracy | features computed |\n"
        "|---|---|---|---:|---:|---:|"
    )
    runs = [[], *(["--budget", budget] for budget in budgets), *([["--model", "snacks_convnet"]] if scratch else [])]
    for index, extra in enumerate(runs):
        out = workdir / f"default-{index}"
        environment = {**os.environ, "HUBEL_CACHE_DIR": str(workdir / f"cache-{index}")}
        start = time.perf_counter()
        subprocess.run([HUBEL, "train", str(ROOT), "--out", str(out), *extra], check=True, env=environment,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        seconds = time.perf_counter() - start
        result = json.loads((out / "result.json").read_text())
        size = "x".join(map(str, hubel.load_model(out / "model.hubel").input_shape[1:3]))
        shown = " ".join(["hubel train cats_and_dogs", *extra])
        computed, accuracy = result.get("feature_images_computed", "-"), result["test_accuracy"]
        print(f"| `{shown}` | {result['model']} | {size} | {seconds:.1f} | {accuracy:.4f} | {computed} |")


def pretrained_top(backbone: str) -> None:
    entry = applications.BACKBONES.get(backbone)
    model = entry.build()
    cats = model.predict(entry.preprocess_input(photos("cats", 20))).argmax(axis=1)
    dogs = model.predict(entry.preprocess_input(photos("dogs", 20))).argmax(axis=1)
    print(
        f"\n| {backbone} ImageNet top, 224x224 | in a cat class (281-285) | in a dog class (151-268) |\n|---|---:|---:|"
    )
    for name, top in (("20 cat photos", cats), ("20 dog photos", dogs)):
        print(f"| {name} | {((top >= 281) & (top <= 285)).sum()} | {((top >= 151) & (top <= 268)).sum()} |")


def tutorial_head() -> None:
    inputs = L.Input((5, 5, 1024))
    x = L.Dropout(0.5)(L.Dense(256, activation="relu")(L.Flatten()(inputs)))
    model = hubel.Model(inputs, L.Dense(1, activation="sigmoid")(x))
    print(f"\nThe tutorial's functional head: {model.count_params():,} params (Keras prints 6,554,113)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="mobilenet_v2", choices=applications.list_backbones())
    parser.add_argument("--defaults", action="store_true", help="only `hubel train FOLDER` without --model")
    parser.add_argument("--budgets", nargs="*", default=[], help="with --defaults: --budget values to run too")
    parser.add_argument("--scratch", action="store_true", help="with --defaults: --model snacks_convnet too")
    arguments = parser.parse_args()
    if arguments.defaults:
        with tempfile.TemporaryDirectory() as folder:
            default_runs(Path(folder), arguments.budgets, arguments.scratch)
        sys.exit()
    backbone = arguments.backbone
    feature_pass(backbone)
    with tempfile.TemporaryDirectory() as folder:
        trained = train_runs(Path(folder), backbone)
        chunked_inference(trained)
    pretrained_top(backbone)
    tutorial_head()
