"""The C allocator's policy for large blocks, which decides whether RSS stays flat.

With the onnxruntime arena off, every tensor (the decoded image, the preprocessed input, each
activation) is a ``malloc``. glibc serves a block above its *mmap threshold* with its own
``mmap`` and returns it to the system on ``free``; below it, from a heap that keeps freed memory.
The threshold is dynamic by default: each freed mmapped block raises it (up to 32 MiB), so after
the first large image every later one comes from the heaps, one per thread that allocates. With
image sizes that vary, those heaps fragment and keep the largest footprint any request needed:
RSS grows by tens of percent and does not come back (measured by ``bench/memory.py``).

Fixing the threshold (``mallopt(M_MMAP_THRESHOLD, n)``) turns the dynamic adjustment off: blocks
of ``n`` bytes and more are mapped and unmapped with their tensor, so RSS follows the work in
flight and falls back when it is done. The price is a page fault per page of each large block on
first touch; the benchmark suite measures both.

Only glibc has ``mallopt``; elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (malloc.h)."""

_applied: int | None = None


def set_mmap_threshold(threshold: int) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for the whole process (0: leave it).

    Idempotent; the first non-zero value wins, since the allocator's state is process-wide.

    Returns:
        Whether the threshold is now fixed at ``threshold``.
    """
    global _applied
    if threshold <= 0:
        return False
    if _applied is not None:
        return _applied == threshold
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to tune
        log.debug("mallopt is not available; the C allocator keeps its own policy")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; the allocator keeps its policy", threshold)
        return False
    _applied = int(threshold)
    return True
