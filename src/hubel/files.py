"""Atomic file writes: the one way hubel replaces a file (model files, checkpoints, caches,
reports), so that a crash or a kill at any instant leaves either the old file or the new one,
never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(
    path: str | Path, mode: str = "wb", keep_previous: str | Path | None = None, **open_options: Any
) -> Iterator[IO[Any]]:
    """Write through a temporary file beside `path`; on success fsync it and rename it over
    `path`; on failure remove it and re-raise. With `keep_previous`, the file that was at `path`
    is kept there too, and `path` never goes missing (see _keep).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "note.txt"
        >>> with atomic_write(target, "w") as file:
        ...     _ = file.write("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with open(temporary, mode, **open_options) as file:  # file.name is the temporary path
            yield file
            file.flush()
            os.fsync(file.fileno())
        if keep_previous is not None and path.exists():
            _keep(path, Path(keep_previous))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _keep(path: Path, previous: Path) -> None:
    """Make `previous` a second name of the file at `path` (a hard link), so that `path` exists at
    every moment of a save: a process that watches or reads it (a resume, a test polling for a
    checkpoint) never finds it missing. Where links are not supported, `path` is renamed to
    `previous` instead, and is missing until the new file is renamed over it."""
    previous.unlink(missing_ok=True)
    try:
        os.link(path, previous)
    except OSError:
        os.replace(path, previous)
