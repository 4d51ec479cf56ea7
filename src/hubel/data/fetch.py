"""Downloads with a checksum check, a progress bar on terminals, and nothing half-written:
the file appears under its name only once its checksum matched."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

from hubel.data.paths import offline
from hubel.errors import DataError
from hubel.files import atomic_write

__all__ = ["DownloadError", "download", "file_digest"]

_CHUNK = 1 << 20


class DownloadError(DataError):
    """The network could not deliver the file (offline, unreachable, or a checksum mismatch)."""


def file_digest(path: Path, algorithm: str = "sha256", gunzip: bool = False) -> str:
    """Hex digest of a file, or of its gzip-decompressed content."""
    digest = hashlib.new(algorithm)
    with (gzip.open if gunzip else open)(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str, destination: Path, digest: str, algorithm: str = "sha256", gunzip: bool = False, timeout: float = 30.0
) -> Path:
    """Fetch `url` to `destination` and check its digest (of the gunzipped bytes if gunzip=True).

    Raises DownloadError (and leaves nothing behind) when offline, unreachable or corrupt.
    """
    if offline():
        raise DownloadError(f"not downloading {url}: HUBEL_OFFLINE is set")
    with atomic_write(destination) as out:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0)
                _copy_with_progress(response, out, total, destination.name)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"could not download {url}: {reason}") from None
        out.flush()
        actual = file_digest(Path(out.name), algorithm, gunzip)
        if actual != digest:
            raise DownloadError(
                f"{url} arrived damaged or changed: {algorithm} {actual}, expected {digest}. Try again later."
            )
    return destination


def _copy_with_progress(source, target, total: int, label: str) -> None:  # type: ignore[no-untyped-def]
    if not sys.stderr.isatty():
        print(f"Downloading {label} ...", file=sys.stderr, flush=True)
        shutil.copyfileobj(source, target, _CHUNK)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
    ) as bar:
        task = bar.add_task(f"Downloading {label}", total=total or None)
        while chunk := source.read(_CHUNK):
            target.write(chunk)
            bar.advance(task, len(chunk))
