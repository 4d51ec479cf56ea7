"""Where hubel looks for data and keeps its caches.

HUBEL_DATA_DIR: datasets you provide (searched first; downloads land here).
HUBEL_CACHE_DIR: decoded arrays and image caches hubel writes for speed (safe to delete).
Both default to folders under the per-user cache (XDG_CACHE_HOME or ~/.cache).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_dir", "offline"]


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubel"


def data_dir() -> Path:
    """The folder searched first for datasets (HUBEL_DATA_DIR, default ~/.cache/hubel/datasets)."""
    configured = os.environ.get("HUBEL_DATA_DIR")
    return Path(configured).expanduser() if configured else _user_cache() / "datasets"


def cache_dir() -> Path:
    """The folder for hubel's own caches (HUBEL_CACHE_DIR, default ~/.cache/hubel/cache)."""
    configured = os.environ.get("HUBEL_CACHE_DIR")
    return Path(configured).expanduser() if configured else _user_cache() / "cache"


def offline() -> bool:
    """True when HUBEL_OFFLINE is set to a true value: never try the network."""
    return os.environ.get("HUBEL_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
