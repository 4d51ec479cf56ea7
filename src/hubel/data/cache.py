"""The decoded-image cache: every image of a folder decoded and resized once, kept on disk as
one uint8 array (N, H, W, C) that is memory-mapped for reading.

One cache per (folder, DecodeOptions). Its index records, per relative path, the file's size
and modification time, and either the row holding its pixels or why it could not be
decoded; a file is decoded again only when its size or time changed. New pixels are
written and synced before the index is replaced atomically, so a crash never leaves an index
pointing at missing pixels. The first pass decodes in parallel processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hubel.data.images import DecodeOptions, UnreadableImage, decode_image
from hubel.data.parallel import parallel_map
from hubel.data.paths import cache_dir
from hubel.errors import DataError
from hubel.files import atomic_write

__all__ = ["CacheResult", "ImageCache"]

_INDEX_FORMAT = "hubel.image-cache.v1"


@dataclass(frozen=True)
class CacheResult:
    pixels: np.ndarray  # (rows, H, W, C) uint8, memory-mapped
    rows: np.ndarray  # row of each requested file, -1 where it could not be decoded
    errors: dict[str, str]  # relative path -> why it was skipped
    decoded: int  # how many files were decoded in this call (0 when all came from the cache)
    seconds: float


class ImageCache:
    """Decoded pixels of the files under `root`, for one set of DecodeOptions."""

    def __init__(self, root: Path, options: DecodeOptions, directory: Path | None = None) -> None:
        self.root = root.resolve()
        self.options = options
        key = hashlib.sha1(f"{self.root}|{options.key()}".encode()).hexdigest()[:16]
        self.directory = directory or cache_dir() / "images" / f"{self.root.name}-{key}"
        height, width = options.image_size
        self.row_shape = (height, width, options.channels)
        self.row_bytes = height * width * options.channels

    @property
    def pixels_path(self) -> Path:
        return self.directory / "pixels.u8"

    @property
    def index_path(self) -> Path:
        return self.directory / "index.json"

    def load(self, files: Sequence[str], workers: int | None = None, progress: bool = False) -> CacheResult:
        """Pixels for `files` (paths relative to root), decoding only what is new or changed."""
        start = time.perf_counter()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "lock").touch()
        except OSError as error:
            raise DataError(
                f"cannot write the image cache in {self.directory} ({error.strerror or error}). "
                f"Set HUBEL_CACHE_DIR to a writable folder."
            ) from None
        with self._locked():
            entries, total_rows = self._read_index()
            stale: list[str] = []
            stats: dict[str, tuple[int, int]] = {}
            errors: dict[str, str] = {}
            for relative in files:
                try:
                    stat = (self.root / relative).stat()
                except FileNotFoundError:
                    errors[relative] = "missing (a broken link, or deleted while reading)"
                    continue
                except OSError as error:
                    errors[relative] = f"cannot read: {error.strerror or error}"
                    continue
                stats[relative] = (stat.st_size, stat.st_mtime_ns)
                known = entries.get(relative)
                if known is None or (known["size"], known["mtime_ns"]) != stats[relative]:
                    stale.append(relative)
            if stale:
                total_rows = self._update(stale, entries, stats, total_rows, workers, progress)
            rows = np.full(len(files), -1, dtype=np.int64)
            for position, relative in enumerate(files):
                entry = entries.get(relative)
                if relative in errors or entry is None:
                    continue
                if entry["row"] is None:
                    errors[relative] = entry["error"]
                else:
                    rows[position] = entry["row"]
            pixels = (
                np.memmap(self.pixels_path, np.uint8, mode="r", shape=(total_rows, *self.row_shape))
                if total_rows
                else np.zeros((0, *self.row_shape), np.uint8)
            )
        return CacheResult(pixels, rows, errors, len(stale), time.perf_counter() - start)

    # ----- internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process updates a cache at a time (POSIX advisory lock; a no-op elsewhere)."""
        with open(self.directory / "lock", "a+") as handle:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX)
            except ImportError:
                pass
            yield

    def _read_index(self) -> tuple[dict[str, dict], int]:
        try:
            document = json.loads(self.index_path.read_text())
            if document.get("format") != _INDEX_FORMAT or document.get("options") != self.options.key():
                raise ValueError("another format")
            rows = int(document["rows"])
            on_disk = self.pixels_path.stat().st_size // self.row_bytes if self.pixels_path.exists() else 0
            if on_disk < rows:
                raise ValueError("pixels shorter than the index")
            return dict(document["entries"]), rows
        except (OSError, ValueError, KeyError, TypeError):
            return {}, 0  # no cache yet, or one that cannot be trusted: start again

    def _update(
        self,
        stale: list[str],
        entries: dict[str, dict],
        stats: dict[str, tuple[int, int]],
        rows: int,
        workers: int | None,
        progress: bool,
    ) -> int:
        """Decode `stale` files straight into their rows (a changed file keeps its row, a new one
        gets a new row), sync the pixels, then replace the index atomically. Returns the row count."""
        targets = []
        for relative in stale:
            row = entries.get(relative, {}).get("row")
            if row is None:
                row, rows = rows, rows + 1
            targets.append((str(self.root / relative), row))
        with open(self.pixels_path, "r+b" if self.pixels_path.exists() else "w+b") as file:
            file.truncate(rows * self.row_bytes)  # room for new rows; drops bytes a crash left past the index
            try:
                with _writing_back(file.fileno()):
                    reasons = parallel_map(
                        _decode_into_row,
                        targets,
                        workers=workers,
                        label="Decoding images",
                        progress=progress,
                        options=self.options,
                        pixels_path=str(self.pixels_path),
                        row_bytes=self.row_bytes,
                    )
            finally:
                _close_pixels_file()
            os.fsync(file.fileno())
        for relative, (_, row), reason in zip(stale, targets, reasons):
            size, mtime_ns = stats[relative]
            entries[relative] = {"row": None if reason else row, "size": size, "mtime_ns": mtime_ns, "error": reason}
        document = {"format": _INDEX_FORMAT, "options": self.options.key(), "rows": rows, "entries": entries}
        with atomic_write(self.index_path, "w") as index:
            index.write(json.dumps(document))  # json.dump writes piece by piece: 4x slower here
        return rows


def _decode_into_row(target: tuple[str, int], options: DecodeOptions, pixels_path: str, row_bytes: int) -> str | None:
    """Decode one file and write its pixels at its row (workers write directly: no pixels travel
    between processes). Returns None, or why the file was skipped."""
    path, row = target
    try:
        pixels = decode_image(Path(path), options)
    except UnreadableImage as reason:
        return str(reason)
    file = _pixels_file(pixels_path)
    file.seek(row * row_bytes)
    unwritten = memoryview(np.ascontiguousarray(pixels)).cast("B")
    while unwritten:  # an unbuffered write may take part of the row
        unwritten = unwritten[file.write(unwritten) :]
    return None


_pass = threading.local()  # .file: (process, path, unbuffered file) of this thread's pass under way


def _pixels_file(path: str) -> Any:
    """The pixel file, opened once per process for a pass (opening it for every image cost as much
    as writing the row); unbuffered, so a worker that exits leaves nothing unwritten."""
    opened = getattr(_pass, "file", None)
    if opened is None or opened[:2] != (os.getpid(), path):  # a forked worker opens its own
        opened = _pass.file = (os.getpid(), path, open(path, "r+b", buffering=0))
    return opened[2]


def _close_pixels_file() -> None:
    opened = getattr(_pass, "file", None)
    if opened is not None and opened[0] == os.getpid():
        opened[2].close()
    _pass.file = None


@contextlib.contextmanager
def _writing_back(descriptor: int, every: float = 0.1) -> Iterator[None]:
    """Sync the file's written pages every `every` seconds on a thread while the block runs, so that
    the sync after it, before the index may point at them, waits for the last few rows only: it
    had cost 0.2 ms an image at the end of the pass."""
    finished = threading.Event()
    sync = getattr(os, "fdatasync", os.fsync)

    def write_back() -> None:
        while not finished.wait(every):
            try:
                sync(descriptor)
            except OSError:  # the sync after the block raises it, where the pass can report it
                return

    thread = threading.Thread(target=write_back, name="hubel-cache-write-back", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
