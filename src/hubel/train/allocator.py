"""glibc's allocator, set for tensors: large freed blocks are kept for the next step, not unmapped.

glibc serves a block above its mmap threshold (128 KiB at start, rising with use to 32 MiB) from a
fresh mapping and unmaps it when it is freed; it also gives the top of its heap back to the kernel
past a trim threshold. A training step or a batch of predictions frees its activations (tens of MB
at batch 256 on 32x32 images) and the next one maps them again, and the kernel zero-fills every page
on first touch. On two AMD EPYC cores that made one 1-to-64-channel 3x3 convolution of 256 28x28
images take 47 ms instead of 15, and `model.predict` on the tutorial's Fashion-MNIST network 0.7x
as fast (benchmarks/README.md, "glibc's allocator").

hubel raises both thresholds once per process, when a model is first placed on the CPU: blocks up
to 256 MiB come from the heap, and up to 512 MiB of freed heap stays with the process, to be reused.
A process whose user chose the allocator's settings (`GLIBC_TUNABLES` or a `MALLOC_*_` variable
set, e.g. `MALLOC_TRIM_THRESHOLD_=131072` for glibc's own) or that runs on another C library is
left alone.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_blocks"]

MMAP_THRESHOLD = 256 << 20  # bytes: larger blocks are still mapped and unmapped one by one
TRIM_THRESHOLD = 512 << 20  # bytes of free heap top kept before glibc returns it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
_USER_SETTINGS = ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@functools.cache
def keep_freed_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process; True when they were set.

    Example:
        >>> keep_freed_blocks() in (True, False)
        True
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc alone has it (musl, for one, has no such mallopt)  # noqa: B018
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
