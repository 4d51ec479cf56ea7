"""Image folders, in the spirit of keras.utils.image_dataset_from_directory:

    train, val = hubel.data.image_folder("photos/", validation_split=0.2, subset="both")

Layouts: root/<class>/* (split automatically with validation_split), or
root/{train, val|validation, test}/<class>/* (detected). Images are decoded once into the
cache (see cache.py); unreadable and hidden files are skipped, counted and listed, never fatal.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubel.data.cache import ImageCache
from hubel.data.images import DecodeOptions, image_extensions
from hubel.data.paths import cache_dir
from hubel.data.shards import ShardBatch, shard
from hubel.errors import ConfigError, DataError
from hubel.files import atomic_write

__all__ = ["AUTOTUNE", "FolderPixels", "FolderScan", "ImageFolderDataset", "Skipped", "image_folder", "scan_folder"]

AUTOTUNE = -1  # tf.data.AUTOTUNE, for the tutorials' `dataset.prefetch(buffer_size=AUTOTUNE)`

_SPLIT_NAMES = {
    "training": ("train", "training"),
    "validation": ("val", "validation", "valid"),
    "test": ("test", "testing"),
}
_JUNK = {"thumbs.db", "desktop.ini", "ehthumbs.db"}
_SUBSETS = ("training", "validation", "test", "both")
_LABEL_MODES = ("int", "categorical", "binary")


@dataclass(frozen=True)
class Skipped:
    path: str  # relative to the dataset root
    reason: str


@dataclass
class FolderScan:
    """What a folder holds: class names and, per split, the image files and their labels."""

    root: Path
    class_names: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(relative path, label)]; "all" when not split on disk
    skipped: list[Skipped]


def scan_folder(
    root: str | Path, follow_links: bool = False, extensions: set[str] | None = None, noun: str = "images"
) -> FolderScan:
    """Find classes and files under root, in either layout; DataError when there are none.
    extensions (".txt", ...) and noun ("text files") make it a scan for other files than images."""
    root = Path(root)
    extensions = extensions or image_extensions()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder. Pass a folder holding one sub-folder of {noun} per class.")
    on_disk = _split_folders(root)
    skipped: list[Skipped] = []
    if on_disk:
        if "training" not in on_disk:
            raise DataError(f"{root}: has {', '.join(p.name for p in on_disk.values())} but no train/ folder.")
        class_names = _class_folders(on_disk["training"], extensions, noun)
        splits = {}
        for split, folder in on_disk.items():
            names = _class_folders(folder, extensions, noun)
            unknown = sorted(set(names) - set(class_names))
            if unknown:
                raise DataError(
                    f"{folder}: classes {unknown} are not in {on_disk['training'].name}/. Every split needs the "
                    f"training split's classes."
                )
            splits[split] = _class_files(root, folder, class_names, names, skipped, follow_links, extensions, noun)
    else:
        class_names = _class_folders(root, extensions, noun)
        splits = {"all": _class_files(root, root, class_names, class_names, skipped, follow_links, extensions, noun)}
    return FolderScan(root, class_names, splits, skipped)


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    return found


def _class_folders(folder: Path, extensions: set[str], noun: str) -> list[str]:
    names = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        loose = sum(1 for entry in folder.iterdir() if entry.suffix.lower() in extensions)
        hint = f" It holds {loose} {noun} directly: move them into one sub-folder per class." if loose else ""
        raise DataError(f"{folder}: no class folders. Expected {folder}/<class name>/<{noun}>.{hint}")
    return names


def _class_files(
    root: Path,
    folder: Path,
    class_names: list[str],
    present: list[str],
    skipped: list[Skipped],
    follow_links: bool,
    extensions: set[str],
    noun: str,
) -> list[tuple[str, int]]:
    files: list[tuple[str, int]] = []
    for name in present:
        label = class_names.index(name)
        count = 0
        for directory, subfolders, filenames in os.walk(folder / name, followlinks=follow_links):
            subfolders[:] = sorted(sub for sub in subfolders if not sub.startswith("."))
            for filename in sorted(filenames):
                path = Path(directory) / filename
                relative = str(path.relative_to(root))
                if filename.startswith(".") or filename.lower() in _JUNK:
                    skipped.append(Skipped(relative, "hidden or system file"))
                elif path.is_symlink() and not path.exists():
                    skipped.append(Skipped(relative, "broken link"))
                elif path.suffix.lower() not in extensions:
                    kind = "an image" if noun == "images" else "a text"
                    skipped.append(Skipped(relative, f"not {kind} file name ({path.suffix or 'no extension'})"))
                else:
                    files.append((relative, label))
                    count += 1
        if count == 0:
            raise DataError(f"{folder / name}: the class folder {name!r} holds no {noun}. Add {noun} or remove it.")
    return files


# ----- persisted stratified split ---------------------------------------------------------


def _path_key(relative: str) -> str:
    return hashlib.sha1(relative.replace(os.sep, "/").encode()).hexdigest()[:16]


def _split_store(root: Path, split_file: Path | None) -> Path:
    """Where the split is recorded: split_file when given (keep it with the data to carry the
    split to other machines), else the cache — hubel never writes into the data folder by itself."""
    if split_file is not None:
        return split_file
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "splits" / f"{root.name}-{key}.json"


def assign_validation(files: list[tuple[str, int]], fraction: float, seed: int, store: Path) -> list[bool]:
    """True for the files in the validation subset: stratified per class, recorded in `store`, so
    files keep their subset when others are added and the split is the same on every machine."""
    try:
        document = json.loads(store.read_text()) if store.exists() else {}
    except (OSError, ValueError):
        document = {}
    splits = document.get("splits", {}) if document.get("format") == "hubel.split" else {}
    name = f"validation_split={fraction},seed={seed}"
    recorded: dict[str, str] = dict(splits.get(name, {}))
    keys = [_path_key(relative) for relative, _ in files]
    by_class: dict[int, list[int]] = {}
    for position, (_, label) in enumerate(files):
        by_class.setdefault(label, []).append(position)
    for members in by_class.values():
        target = round(fraction * len(members))
        in_validation = sum(recorded.get(keys[p]) == "validation" for p in members)
        new = [p for p in members if keys[p] not in recorded]
        new.sort(key=lambda p: hashlib.sha1(f"{seed}:{keys[p]}".encode()).hexdigest())
        for position in new:
            chosen = "validation" if in_validation < target else "training"
            in_validation += chosen == "validation"
            recorded[keys[position]] = chosen
    if splits.get(name) != recorded:
        splits[name] = recorded
        try:
            with atomic_write(store, "w") as file:
                json.dump({"format": "hubel.split", "version": 1, "splits": splits}, file, indent=1)
        except OSError:
            pass  # a read-only place: the split is still deterministic for the same files
    return [recorded[key] == "validation" for key in keys]


# ----- the dataset ------------------------------------------------------------------------


class ImageFolderDataset:
    """(x, y) batches from an image folder: x uint8 (batch, H, W, C), y labels per label_mode.

    Iterating once is one epoch; with shuffle=True each epoch has a new order, reproducible
    from the seed. `len()` is the number of batches, as in Keras.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        rows: np.ndarray,
        labels: np.ndarray,
        files: list[str],
        class_names: list[str],
        *,
        root: Path,
        subset: str,
        batch_size: int,
        shuffle: bool,
        seed: int | None,
        label_mode: str,
        skipped: list[Skipped],
    ) -> None:
        self._pixels, self._rows = pixels, rows
        self.labels, self.files, self.class_names = labels, files, class_names
        self.root, self.subset = root, subset
        self.batch_size, self.shuffles, self.label_mode = batch_size, shuffle, label_mode  # shuffles: each pass
        self.seed = seed if seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        self.skipped = skipped
        self.epoch = 0
        self._shard = (0, 1)  # (rank, processes): see shard()

    @property
    def num_examples(self) -> int:
        return len(self._rows)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._pixels.shape[1:])  # type: ignore[return-value]

    @property
    def class_indices(self) -> dict[str, int]:
        """{class name: label}, as Keras's flow_from_directory exposes it."""
        return {name: index for index, name in enumerate(self.class_names)}

    def set_epoch(self, epoch: int) -> None:
        """Shuffle the next pass as epoch `epoch` (a resumed run replays the same order)."""
        self.epoch = epoch

    # ----- tf.data's pipeline methods, as the tutorials chain them ------------------------
    # `train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)` runs as written: the decoded
    # pixels are cached on disk and in memory already, and a batch is a slice of them, so there
    # is nothing to prefetch.

    def cache(self, filename: str = "") -> ImageFolderDataset:
        """The dataset itself: its decoded images are cached already."""
        return self

    def prefetch(self, buffer_size: int = AUTOTUNE) -> ImageFolderDataset:
        """The dataset itself: a batch is a slice of cached pixels, ready at once."""
        return self

    def shuffle(self, buffer_size: int, seed: int | None = None, reshuffle_each_iteration: bool = True) -> Any:
        """A view that shuffles all its images each pass (any buffer_size shuffles fully)."""
        if not reshuffle_each_iteration:
            raise ConfigError(
                "shuffle(reshuffle_each_iteration=False) is not supported: hubel reshuffles every pass, from the "
                "seed. Leave the argument out."
            )
        view = copy.copy(self)
        view.shuffles = True
        view.seed = self.seed if seed is None else int(seed)
        return view

    def take(self, count: int) -> list[Any]:
        """The first `count` batches of one pass, as tf.data's take (the tutorials'
        `for images, labels in train_ds.take(1)`); count -1 takes them all."""
        if isinstance(count, bool) or not isinstance(count, int) or count < -1:
            raise ConfigError(f"take: expected a number of batches (-1 for all). Received: {count!r}")
        batches = iter(self)
        return list(batches) if count == -1 else [batch for _, batch in zip(range(count), batches)]

    def shard(self, rank: int, size: int) -> ImageFolderDataset:
        """Process `rank`'s view of the data in a run on `size` processes: each global batch
        (batch_size × size examples of the one shuffled order) split as data.shards.shard splits
        it; iterating yields ShardBatch(x, y, share). The pixels are shared, not copied."""
        view = copy.copy(self)
        view._shard = (rank, size)
        return view

    def __len__(self) -> int:
        return math.ceil(len(self._rows) / (self.batch_size * self._shard[1]))

    def __iter__(self) -> Iterator[Any]:
        order = np.arange(len(self._rows))
        if self.shuffles:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        self.epoch += 1
        rank, size = self._shard
        for start in range(0, len(order), self.batch_size * size):
            batch = order[start : start + self.batch_size * size]
            if size > 1:
                part, share = shard(len(batch), rank, size)
                batch = batch[part]
            x, y = np.asarray(self._pixels[self._rows[batch]]), self._encode(self.labels[batch])
            yield ShardBatch(x, y, share) if size > 1 else (x, y)

    def numpy(self, count: int | None = None, lazy: bool = False) -> tuple[Any, np.ndarray]:
        """Every example in file order, as (x, y) arrays; or about `count` of them, spread evenly
        over that order (and so over the classes). lazy=True: x is a FolderPixels, whose slices
        are read from the cache when asked for, for a pass over every image that holds one slice
        of them at a time."""
        picked = np.arange(len(self._rows))
        if count is not None and count < len(picked):
            picked = picked[:: math.ceil(len(picked) / count)]
        rows = FolderPixels(self._pixels, self._rows[picked])
        return rows if lazy else rows[:], self._encode(self.labels[picked])

    def _encode(self, labels: np.ndarray) -> np.ndarray:
        if self.label_mode == "categorical":
            return np.eye(len(self.class_names), dtype=np.float32)[labels]
        if self.label_mode == "binary":
            return labels.astype(np.float32).reshape(-1, 1)
        return labels

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset({self.root}, subset={self.subset!r}, {self.num_examples} images, "
            f"{len(self.class_names)} classes, batch_size={self.batch_size}, image_shape={self.image_shape})"
        )


class FolderPixels:
    """A folder's images as a read-only (N, H, W, C) uint8 array whose slices are read from the
    cache when asked for (a feature pass over 25,000 photos at 224x224 would hold 3.8 GB copied).

    Example:
        >>> rows = FolderPixels(np.arange(24, dtype=np.uint8).reshape(4, 1, 2, 3), np.array([2, 0]))
        >>> rows.shape, rows[1:2].tolist()
        ((2, 1, 2, 3), [[[[0, 1, 2], [3, 4, 5]]]])
    """

    def __init__(self, pixels: np.ndarray, rows: np.ndarray) -> None:
        self._pixels, self._rows = pixels, rows
        self.shape: tuple[int, ...] = (len(rows), *pixels.shape[1:])
        self.dtype = pixels.dtype

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: slice) -> np.ndarray:  # a copy of those images, in memory
        if not isinstance(index, slice):
            raise TypeError(f"FolderPixels takes slices (pixels[start:stop]). Received: {index!r}")
        return np.asarray(self._pixels[self._rows[index]])


def image_folder(
    root: str | Path,
    image_size: tuple[int, int] | int = (160, 160),
    batch_size: int = 32,
    *,
    validation_split: float | None = None,
    subset: str | None = None,
    seed: int | None = None,
    shuffle: bool = True,
    label_mode: str = "int",
    color_mode: str = "rgb",
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    follow_links: bool = False,
    workers: int | None = None,
    verbose: bool = True,
    split_file: str | Path | None = None,
    max_pixels: int | str | None = "default",
) -> ImageFolderDataset | tuple[ImageFolderDataset, ImageFolderDataset]:
    """Images under `root`, one sub-folder per class, as batches of (uint8 images, labels).

    subset picks "training", "validation" (with validation_split, or a val/ folder), "test"
    (a test/ folder) or "both" (training and validation, returned as a pair). Without a
    subset, every image is in one dataset (the train/ folder when the root has one).
    """
    options = _decode_options(
        image_size, color_mode, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, max_pixels
    )
    _check_arguments(batch_size, validation_split, subset, label_mode)
    scan = scan_folder(root, follow_links)
    if label_mode == "binary" and len(scan.class_names) != 2:
        raise ConfigError(
            f"label_mode='binary' needs exactly 2 classes; {scan.root} has {len(scan.class_names)}: "
            f"{scan.class_names}. Use label_mode='int' or 'categorical'."
        )
    wanted = ["training", "validation"] if subset == "both" else [subset or "training"]
    chosen = _choose_files(scan, wanted, validation_split, seed, split_file)
    every_file = sorted({relative for files in chosen.values() for relative, _ in files})
    cache = ImageCache(scan.root, options)
    result = cache.load(every_file, workers=workers, progress=verbose)
    row_of = dict(zip(every_file, result.rows.tolist()))
    skipped = list(scan.skipped) + [Skipped(path, reason) for path, reason in sorted(result.errors.items())]
    report = _write_report(cache.directory, skipped)
    datasets = []
    for split, files in chosen.items():
        usable = [(relative, label) for relative, label in files if row_of[relative] >= 0]
        counts = Counter(label for _, label in usable)
        empty = [scan.class_names[label] for label in range(len(scan.class_names)) if counts[label] == 0]
        if empty and split == "training":
            raise DataError(
                f"{scan.root}: no readable images for class(es) {empty} in the {split} subset. See {report}."
            )
        datasets.append(
            ImageFolderDataset(
                result.pixels,
                np.array([row_of[relative] for relative, _ in usable], dtype=np.int64),
                np.array([label for _, label in usable], dtype=np.int64),
                [relative for relative, _ in usable],
                scan.class_names,
                root=scan.root,
                subset=split,
                batch_size=batch_size,
                shuffle=shuffle and split == "training",
                seed=seed,
                label_mode=label_mode,
                skipped=skipped,
            )
        )
    if verbose:
        _announce(scan, datasets, skipped, report, result)
    return (datasets[0], datasets[1]) if subset == "both" else datasets[0]


def _decode_options(
    image_size: Any, color_mode: str, interpolation: str, crop: bool, pad: bool, max_pixels: Any
) -> DecodeOptions:
    from PIL import Image

    from hubel.layers.args import choice, integer_tuple

    size = integer_tuple("image_folder", "image_size", image_size, 2)
    mode = choice("image_folder", "color_mode", color_mode, ("rgb", "grayscale"))
    method = choice(
        "image_folder", "interpolation", interpolation, ("bilinear", "nearest", "bicubic", "lanczos", "area")
    )
    if crop and pad:
        raise ConfigError("image_folder: crop_to_aspect_ratio and pad_to_aspect_ratio cannot both be True.")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels == "default" else max_pixels
    return DecodeOptions(size, mode, method, bool(crop), bool(pad), limit)  # type: ignore[arg-type]


def _check_arguments(batch_size: int, validation_split: float | None, subset: str | None, label_mode: str) -> None:
    from hubel.layers.args import choice, number, positive_int

    positive_int("image_folder", "batch_size", batch_size)
    choice("image_folder", "label_mode", label_mode, _LABEL_MODES)
    if subset is not None:
        choice("image_folder", "subset", subset, _SUBSETS)
    if validation_split is not None:
        fraction = number("image_folder", "validation_split", validation_split, 0.0, 1.0)
        if not 0.0 < fraction < 1.0:
            raise ConfigError(
                f"image_folder: expected `validation_split` strictly between 0 and 1. "
                f"Received: validation_split={validation_split!r}"
            )


def _choose_files(
    scan: FolderScan, wanted: list[str], validation_split: float | None, seed: int | None, split_file: Any
) -> dict[str, list[tuple[str, int]]]:
    chosen: dict[str, list[tuple[str, int]]] = {}
    pool = scan.splits.get("all", scan.splits.get("training", []))
    needs_split = validation_split is not None and "validation" in wanted and "validation" not in scan.splits
    in_validation: list[bool] = []
    if needs_split:
        store = _split_store(scan.root, Path(split_file) if split_file else None)
        in_validation = assign_validation(pool, validation_split, seed if seed is not None else 0, store)  # type: ignore[arg-type]
    for split in wanted:
        if split in scan.splits:
            chosen[split] = scan.splits[split]
        elif needs_split and split in ("training", "validation"):
            keep = split == "validation"
            chosen[split] = [item for item, flag in zip(pool, in_validation) if flag == keep]
        elif split == "training":
            chosen[split] = pool
        elif split == "validation":
            raise ConfigError(
                f"{scan.root}: no validation images: pass validation_split=0.2 (for example), or add a val/ folder."
            )
        else:
            raise ConfigError(f"{scan.root}: subset={split!r} needs a {split}/ folder beside train/.")
    return chosen


def _write_report(directory: Path, skipped: list[Skipped]) -> Path:
    report = directory / "skipped.txt"
    try:
        report.write_text("".join(f"{item.path}\t{item.reason}\n" for item in skipped))
    except OSError:
        pass
    return report


def _announce(
    scan: FolderScan, datasets: list[ImageFolderDataset], skipped: list[Skipped], report: Path, result
) -> None:  # type: ignore[no-untyped-def]
    total = sum(len(files) for files in scan.splits.values())
    lines = [f"Found {total} files belonging to {len(scan.class_names)} classes."]
    lines += [f"Using {dataset.num_examples} files for {dataset.subset}." for dataset in datasets]
    if result.decoded:
        lines.append(f"Decoded {result.decoded} images into the cache in {result.seconds:.1f} s.")
    if skipped:
        reasons = Counter(item.reason.split(":")[0].split(" (")[0] for item in skipped)
        summary = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common())
        lines.append(f"Skipped {len(skipped)} files ({summary}); the list is in {report}.")
    print(" ".join(lines), file=sys.stderr)
