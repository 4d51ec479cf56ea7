"""Data health: what a folder of images holds and what is wrong with it, before training.

    report = hubel.data.check("photos/")
    print(report)            # for people
    report.to_json()         # for machines

Counts per class and split, image sizes (the most common one is a good input size), colour
modes, unreadable files and why, exact duplicates (same bytes) and near duplicates (a
difference hash of the pixels), with duplicates shared between splits — leakage — first, and
class imbalance with the class weights that would balance it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hubel.data.cache import ImageCache
from hubel.data.folders import Skipped, scan_folder
from hubel.data.images import DecodeOptions, file_facts
from hubel.data.parallel import parallel_map

__all__ = ["DuplicateGroup", "HealthReport", "check", "difference_hashes"]

# A difference hash compares neighbouring pixels of a 9x8 grayscale thumbnail: 64 bits that
# survive resizing, recompression and small edits. Hashes this close are near duplicates.
_HASH_OPTIONS = DecodeOptions((8, 9), color_mode="grayscale", interpolation="area")


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # "exact" (same bytes) or "near" (same-looking pixels)
    files: tuple[str, ...]
    splits: tuple[str, ...]  # the split of each file

    @property
    def crosses_splits(self) -> bool:
        return len(set(self.splits)) > 1

    @property
    def leaks_into_evaluation(self) -> bool:
        """A copy in training and another in validation or test inflates the evaluation."""
        return "training" in self.splits and bool({"validation", "test"} & set(self.splits))


@dataclass
class HealthReport:
    root: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> images
    sizes: list[tuple[int, int, int]]  # (width, height, images), most common first
    modes: dict[str, int]  # colour mode -> images (RGB, L, RGBA, CMYK, P, ...)
    unreadable: list[Skipped]
    duplicates: list[DuplicateGroup]  # leakage first, then other cross-split groups, then the rest
    class_weights: dict[str, float]  # "balanced", over the training split
    imbalance: float  # largest class / smallest class, training split
    notes: list[str] = field(default_factory=list)

    @property
    def most_common_size(self) -> tuple[int, int] | None:
        return (self.sizes[0][0], self.sizes[0][1]) if self.sizes else None

    @property
    def leaks(self) -> list[DuplicateGroup]:
        return [group for group in self.duplicates if group.leaks_into_evaluation]

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["most_common_size"] = self.most_common_size
        document["leaks"] = len(self.leaks)
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        lines = [f"Data check of {self.root}", ""]
        width = max(len(name) for name in self.class_names)
        splits = list(self.counts)
        lines.append("  " + "class".ljust(width) + "".join(f"{split:>12}" for split in splits))
        for name in self.class_names:
            lines.append("  " + name.ljust(width) + "".join(f"{self.counts[s].get(name, 0):>12,}" for s in splits))
        lines.append("  " + "total".ljust(width) + "".join(f"{sum(self.counts[s].values()):>12,}" for s in splits))
        lines.append("")
        if self.leaks:
            lines.append(f"LEAKAGE: {len(self.leaks)} image(s) appear in training and in validation/test:")
            lines += [
                f"  {group.kind}: " + ", ".join(f"{f} [{s}]" for f, s in zip(group.files, group.splits))
                for group in self.leaks[:20]
            ]
            lines.append("")
        if self.sizes:
            top = ", ".join(f"{w}x{h} ({n:,})" for w, h, n in self.sizes[:5])
            lines.append(f"Image sizes (width x height): {len(self.sizes)} distinct; most common {top}")
        lines.append("Colour modes: " + ", ".join(f"{mode} {count:,}" for mode, count in sorted(self.modes.items())))
        others = [group for group in self.duplicates if not group.leaks_into_evaluation]
        if others:
            exact = sum(group.kind == "exact" for group in others)
            lines.append(f"Duplicates: {exact} exact and {len(others) - exact} near-duplicate group(s) within splits")
            lines += [f"  {group.kind}: " + ", ".join(group.files) for group in others[:10]]
        else:
            lines.append("Duplicates: none")
        lines.append(
            f"Class balance: largest/smallest = {self.imbalance:.2f}; balanced class weights "
            + ", ".join(f"{name} {weight:.3f}" for name, weight in self.class_weights.items())
        )
        if self.unreadable:
            lines.append(f"Unreadable or skipped files: {len(self.unreadable)}")
            lines += [f"  {item.path}: {item.reason}" for item in self.unreadable]
        lines += self.notes
        return "\n".join(lines)


def difference_hashes(thumbnails: np.ndarray) -> np.ndarray:
    """64-bit difference hashes of (N, 8, 9, 1) grayscale thumbnails, as uint64.

    Example:
        >>> ramp = np.tile(np.arange(9, dtype=np.uint8), (1, 8, 1))[..., None]
        >>> hex(int(difference_hashes(ramp)[0]))  # every pixel brighter than its left neighbour
        '0xffffffffffffffff'
    """
    pixels = thumbnails[..., 0].astype(np.int16)
    bits = (pixels[:, :, 1:] > pixels[:, :, :-1]).reshape(len(pixels), 64)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _near_pairs(hashes: np.ndarray, threshold: int) -> list[tuple[int, int]]:
    """Index pairs whose hashes differ in at most `threshold` bits (chunked, vectorised)."""
    pairs = []
    for start in range(0, len(hashes), 1024):
        block = hashes[start : start + 1024]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distance <= threshold)
        pairs += [(start + r, c) for r, c in zip(rows.tolist(), cols.tolist()) if start + r < c]
    return pairs


def check(root: str | Path, near_threshold: int = 5, workers: int | None = None, progress: bool = True) -> HealthReport:
    """Look at every image under root (either folder layout) and report what needs attention."""
    scan = scan_folder(root)
    entries = [(split, relative, label) for split, files in scan.splits.items() for relative, label in files]
    split_names = {"all": "all"}
    relatives = [relative for _, relative, _ in entries]
    facts = parallel_map(
        file_facts, [str(scan.root / r) for r in relatives], workers=workers, label="Reading headers", progress=progress
    )
    thumbnails = ImageCache(scan.root, _HASH_OPTIONS).load(relatives, workers=workers, progress=progress)
    unreadable = list(scan.skipped)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {name: 0 for name in scan.class_names})
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    readable: list[int] = []
    for position, ((split, relative, label), fact) in enumerate(zip(entries, facts)):
        row = int(thumbnails.rows[position])
        if isinstance(fact, str) or row < 0:
            unreadable.append(Skipped(relative, fact if isinstance(fact, str) else thumbnails.errors[relative]))
            continue
        counts[split_names.get(split, split)][scan.class_names[label]] += 1
        sizes[(fact.width, fact.height)] += 1
        modes[fact.mode] += 1
        readable.append(position)
    duplicates = _duplicates(entries, facts, thumbnails, readable, near_threshold)
    training = counts.get("training") or counts.get("all") or {}
    present = {name: count for name, count in training.items() if count}
    total = sum(present.values())
    weights = {name: total / (len(present) * count) for name, count in present.items()}
    imbalance = max(present.values()) / min(present.values()) if present else 1.0
    notes = []
    if imbalance > 1.5:
        notes.append(
            f"Classes are imbalanced: train with class_weight='balanced' (the weights above), or collect more "
            f"images of {min(present, key=present.get)}."  # type: ignore[arg-type]
        )
    return HealthReport(
        root=str(scan.root),
        class_names=scan.class_names,
        counts=dict(counts),
        sizes=[(w, h, n) for (w, h), n in sizes.most_common()],
        modes=dict(modes),
        unreadable=unreadable,
        duplicates=duplicates,
        class_weights=weights,
        imbalance=imbalance,
        notes=notes,
    )


def _duplicates(entries, facts, thumbnails, readable: list[int], threshold: int) -> list[DuplicateGroup]:  # type: ignore[no-untyped-def]
    groups: list[DuplicateGroup] = []
    by_content: dict[str, list[int]] = defaultdict(list)
    for position in readable:
        by_content[facts[position].sha256].append(position)
    exact_sets = [members for members in by_content.values() if len(members) > 1]
    in_exact = {position for members in exact_sets for position in members}
    groups += [_group("exact", members, entries) for members in exact_sets]
    hashes = (
        difference_hashes(np.asarray(thumbnails.pixels)[thumbnails.rows[readable]])
        if readable
        else np.zeros(0, np.uint64)
    )
    parent = list(range(len(readable)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in _near_pairs(hashes, threshold):
        if (
            readable[a] in in_exact
            and readable[b] in in_exact
            and facts[readable[a]].sha256 == facts[readable[b]].sha256
        ):
            continue  # already reported as exact
        parent[find(a)] = find(b)
    clusters: dict[int, list[int]] = defaultdict(list)
    for index in range(len(readable)):
        clusters[find(index)].append(readable[index])
    groups += [_group("near", members, entries) for members in clusters.values() if len(members) > 1]
    return sorted(groups, key=lambda g: (not g.leaks_into_evaluation, not g.crosses_splits, g.kind != "exact", g.files))


def _group(kind: str, members: list[int], entries) -> DuplicateGroup:  # type: ignore[no-untyped-def]
    members = sorted(members, key=lambda p: entries[p][1])
    return DuplicateGroup(kind, tuple(entries[p][1] for p in members), tuple(entries[p][0] for p in members))
