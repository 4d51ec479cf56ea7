"""How fast image folders feed training: the first pass (decode + resize + cache write) and
cached epochs, against raw Pillow decoding and against what a small CNN consumes.

Datasets: the real cats-vs-dogs photos in ../shared/data (longer side <= 256 px) and
generated 500x375 JPEGs (camera-like sizes, where JPEG draft mode matters). Each first pass
starts from an empty cache.

Run by hand:  .venv/bin/python benchmarks/data_speed.py

One measurement in a fresh process, for comparing two trees side by side (put the other tree's
src/ first on PYTHONPATH): the first pass with N processes, then decode_image alone (one thread):

    .venv/bin/python benchmarks/data_speed.py --one generated|FOLDER N
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hubel
from hubel import layers as L
from hubel.data.cache import ImageCache
from hubel.data.folders import scan_folder
from hubel.data.images import DecodeOptions, decode_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats_and_dogs" / "train"


def generated_jpegs(folder: Path, count: int = 400) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        target = folder / ("a" if index % 2 else "b")
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"{index}.jpg", quality=90)
    return folder


def files_of(root: Path) -> list[str]:
    scan = scan_folder(root)
    return [relative for files in scan.splits.values() for relative, _ in files]


def raw_pillow(root: Path, files: list[str]) -> float:
    start = time.perf_counter()
    for relative in files:
        with Image.open(root / relative) as image:
            image.load()
    return len(files) / (time.perf_counter() - start)


def first_pass(root: Path, files: list[str], workers: int, draft: bool) -> float:
    options = DecodeOptions((160, 160), draft=draft)
    with tempfile.TemporaryDirectory() as directory:
        result = ImageCache(root, options, Path(directory)).load(files, workers=workers)
        return len(files) / result.seconds


def cached_epoch(root: Path) -> float:
    dataset = hubel.data.image_folder(root, (160, 160), batch_size=32, verbose=False)
    start = time.perf_counter()
    count = sum(len(y) for _, y in dataset)
    return count / (time.perf_counter() - start)


def small_cnn_training(batches: int = 6) -> float:
    model = hubel.Sequential(
        [
            L.Input((160, 160, 3)),
            L.Rescaling(1 / 255),
            L.Conv2D(16, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(64, activation="relu"),
            L.Dense(2),
        ]
    )
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randint(0, 256, (32, 160, 160, 3), dtype=torch.uint8)
    y = torch.randint(0, 2, (32,))
    model.train()

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return batches * 32 / (time.perf_counter() - start)


def main() -> None:
    print(f"{os.cpu_count()} cores, torch {torch.__version__}, Pillow {Image.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as generated, tempfile.TemporaryDirectory() as cache:
        os.environ["HUBEL_CACHE_DIR"] = cache
        sources = {
            "cats_and_dogs/train (800 real photos)": SHARED,
            "generated 500x375 JPEGs (400)": generated_jpegs(Path(generated)),
        }
        for name, root in sources.items():
            files = files_of(root)
            raw = raw_pillow(root, files)
            rows.append((name, "raw Pillow decode (open + load, 1 process)", raw, 1.0))
            for workers, draft in ((1, False), (1, True), (2, False), (2, True)):
                speed = first_pass(root, files, workers, draft)
                processes = "1 process" if workers == 1 else f"{workers} processes"
                label = f"first pass -> 160x160, {processes}, draft {'on' if draft else 'off'}"
                rows.append((name, label, speed, speed / raw))
            cached_epoch(root)  # fills the cache
            speed = cached_epoch(root)
            rows.append((name, "cached epoch (shuffled batches of 32)", speed, speed / raw))
    training = small_cnn_training()
    print("| data | what | images/s | vs raw Pillow |")
    print("|---|---|---:|---:|")
    for name, label, speed, ratio in rows:
        print(f"| {name} | {label} | {speed:,.0f} | {ratio:.2f}x |")
    print(f"\nSmall CNN (3 convs, 160x160x3, batch 32) training step: {training:,.0f} images/s")
    best_cached = min(speed for _, label, speed, _ in rows if label.startswith("cached"))
    print(f"Slowest cached epoch / training throughput: {best_cached / training:,.0f}x")


def one(folder: str, workers: int) -> None:
    with tempfile.TemporaryDirectory() as generated:
        root = generated_jpegs(Path(generated)) if folder == "generated" else Path(folder)
        files = files_of(root)
        first = first_pass(root, files, workers, draft=True)
        torch.set_num_threads(1)
        start = time.perf_counter()
        for relative in files:
            decode_image(root / relative, DecodeOptions((160, 160)))
        decode = len(files) / (time.perf_counter() - start)
    processes = "1 process" if workers == 1 else f"{workers} processes"
    print(f"first pass {first:,.0f} images/s ({processes}), decode_image alone {decode:,.0f} images/s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], int(sys.argv[3]))
    else:
        main()
