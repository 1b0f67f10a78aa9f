"""The C allocator's policies, which decide whether RSS stays flat with inputs of varying size.

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

That price is too high for a default (a ResNet-18's convolution buffers are tens of MiB, faulted
in on every run), so the defaults keep glibc's threshold and instead share fewer arenas between
threads (:func:`set_arena_max`) and return freed memory when the process is at rest
(:class:`MemoryReturner`): the work pays no refaults, and an idle instance holds only what it
uses.

Only glibc has ``mallopt`` and ``malloc_trim``; elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold (malloc.h)."""
M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter number for the most malloc arenas (malloc.h)."""

_applied: int | None = None
_LIBC: ctypes.CDLL | None = None
_LIBC_LOADED = False


def _libc() -> ctypes.CDLL | None:
    """glibc, or None when the C library has no ``mallopt``/``malloc_trim`` (musl, macOS, Windows)."""
    global _LIBC, _LIBC_LOADED
    if not _LIBC_LOADED:
        _LIBC_LOADED = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            _LIBC = libc
        except (OSError, AttributeError, TypeError):
            log.debug("the C library has no mallopt/malloc_trim; its allocator keeps its own policy")
    return _LIBC


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
    libc = _libc()
    if libc is None:
        return False
    if libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; the allocator keeps its policy", threshold)
        return False
    _applied = int(threshold)
    return True


def trim() -> bool:
    """Return the free memory of every allocator arena to the system (glibc ``malloc_trim(0)``).

    Returns:
        Whether memory was released (False also where there is no ``malloc_trim``).
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def set_arena_max(arenas: int) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (0: leave glibc's default of eight per core).

    Each thread that allocates may get an arena of its own, and each arena keeps the largest
    footprint its thread ever needed; fewer arenas share the freed memory between threads. The cap
    binds threads that have not allocated yet: a host whose own threads start first (the Functions
    worker) also gets glibc's ``MALLOC_ARENA_MAX`` in its environment (the performance presets).

    Returns:
        Whether the cap was applied.
    """
    libc = _libc()
    if arenas <= 0 or libc is None:
        return False
    return libc.mallopt(M_ARENA_MAX, int(arenas)) == 1


class MemoryReturner:
    """Returns freed memory to the system when the process is at rest, and now and then under load.

    glibc keeps freed blocks in its heaps for reuse, so an instance that once decoded a large
    image keeps that footprint. ``malloc_trim`` gives it back, but the next request pays a page
    fault per page it touches again; so this trims only once no work has been in progress for
    ``idle_s`` seconds, and under continuous load at most every ``period_s`` seconds (the refaults
    then cost a fraction of a percent). Work is bracketed by :meth:`enter` and :meth:`leave`, from
    any thread; trimming runs on a thread of its own, started on first use.

    Args:
        idle_s: Quiet time after the last piece of work before trimming (0: never trim).
        period_s: Longest time between trims while work continues (0: only at rest).
        trimmer: What trims (tests pass a recorder); glibc's ``malloc_trim(0)`` by default.
    """

    def __init__(self, idle_s: float, period_s: float, trimmer: Callable[[], bool] | None = None) -> None:
        self.idle_s = idle_s
        self.period_s = period_s
        self.trims = 0
        self._trim = trimmer or trim
        self._cond = threading.Condition()
        self._busy = 0
        self._dirty = False
        self._last_activity = self._last_trim = time.monotonic()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.idle_s > 0

    def enter(self) -> None:
        """A piece of work (a request, a blob) begins."""
        if not self.enabled:
            return
        with self._cond:
            self._busy += 1
            if not self._dirty:  # the returner may be waiting with nothing due: a period starts now
                self._dirty = True
                self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="memory-returner", daemon=True)
                self._thread.start()

    def leave(self) -> None:
        """A piece of work ends."""
        if not self.enabled:
            return
        with self._cond:
            self._busy -= 1
            self._last_activity = time.monotonic()
            if self._busy == 0:
                self._cond.notify()

    def _next_trim_in(self, now: float) -> float | None:
        """Seconds until a trim is due (0: now), or None when nothing needs one."""
        if not self._dirty:
            return None
        due = []
        if self._busy == 0:
            due.append(self._last_activity + self.idle_s)
        if self.period_s > 0:
            due.append(self._last_trim + self.period_s)
        return max(0.0, min(due) - now) if due else None

    def _run(self) -> None:
        while True:
            with self._cond:
                wait = self._next_trim_in(time.monotonic())
                while wait != 0.0:
                    self._cond.wait(wait)
                    wait = self._next_trim_in(time.monotonic())
                self._dirty = self._busy > 0  # work still in progress will free more
                self._last_trim = time.monotonic()
            self._trim()  # outside the lock: work starting meanwhile is not held up
            self.trims += 1
