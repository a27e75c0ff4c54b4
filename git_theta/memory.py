"""Allocator tuning for the filter: reuse freed buffers instead of faulting in fresh pages.

Each tensor passes through several chunk-sized buffers; with glibc's defaults every one is a
fresh mmap, and page faults cost more than the codec (measured here: a GPT-2-small smudge went
from 1.7 s to 1.15 s, 300k to 145k page faults). Memory use does not grow: buffers are reused.
"""

import ctypes
import ctypes.util
import mmap
import sys
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
HUGE_PAGE = 2 << 20
HUGE_MIN_BYTES = 8 << 20  # smaller buffers stay on the heap (rounding would waste more)


def _glibc():
    """glibc, or None off Linux or where it is not the C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:  # find_library runs `ldconfig -p` (~20 ms of every filter start): the soname first
        return ctypes.CDLL("libc.so.6")
    except OSError:
        try:
            return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return None


def tune_allocator() -> None:
    """Raise glibc's mmap/trim thresholds and cap arenas; a no-op where glibc is absent."""
    mallopt = getattr(_glibc(), "mallopt", None)
    if mallopt is None:
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    mallopt(_M_ARENA_MAX, 2)


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc malloc_trim); a no-op elsewhere.

    Worth calling between large, short-lived buffers when peak memory matters more than speed."""
    trim = getattr(_glibc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def limit_arenas(count: int = 1) -> None:
    """Cap glibc's malloc arenas (each thread pool thread otherwise keeps its own freed memory).

    Call before threads start; for memory-bound tools where a few percent of speed matters less."""
    mallopt = getattr(_glibc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, count)


def empty(shape, dtype) -> "np.ndarray":
    """An uninitialised array; a large one is backed by transparent huge pages where the kernel
    offers them (madvise mode): faulting in 500 MB of 4 KiB pages costs ~1.3 s here, of 2 MiB
    pages ~0.05 s. Freed with its last view, like any array; with recycle() on, a large one's
    pages are kept for the next large array instead."""
    import numpy as np

    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if np.ndim(shape) else int(shape)
    nbytes = count * dt.itemsize
    if nbytes < HUGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, dtype=dt)
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    area = _recycled.take(size)
    if area is None:
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            area.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # huge pages switched off ("never"): ordinary pages
            pass
    base = np.frombuffer(area, dtype=dt, count=count)
    if _recycled.limit:
        # every view and memoryview of the array keeps `base` alive (numpy points views at the
        # array that holds the buffer), so the area comes back only when nothing can reach it
        weakref.finalize(base, _recycled.give, area)
    return base.reshape(shape)


class _Recycler:
    """Areas of freed large arrays, kept (up to `limit` bytes) for the next ones: a checkout
    decodes each tensor into a fresh array that lives until it is written, and faulting those
    pages in again and again cost a GPT-2-small checkout 0.1-0.15 s of its ~1.0 s of CPU here
    (0.85 s wall against 0.89-0.93 s, 12 interleaved rounds)."""

    def __init__(self) -> None:
        self.limit = 0
        self.held = 0
        self.free: list[mmap.mmap] = []
        self.lock = threading.Lock()

    def take(self, size: int) -> "mmap.mmap | None":
        """The smallest kept area of at least `size` bytes, or None."""
        if not self.free:
            return None
        with self.lock:
            fits = [a for a in self.free if len(a) >= size]
            if not fits:
                return None
            area = min(fits, key=len)
            self.free.remove(area)
            self.held -= len(area)
            return area

    def give(self, area: mmap.mmap) -> None:
        """Keep a freed area if there is room under the limit; else it is unmapped once the
        dying array lets go of it (this runs while the array is still being freed)."""
        with self.lock:
            if self.held + len(area) <= self.limit:
                self.free.append(area)
                self.held += len(area)

    def set_limit(self, limit: int) -> None:
        with self.lock:
            self.limit = limit
            while self.held > limit and self.free:
                self.held -= len(self.free.pop())


_recycled = _Recycler()


def recycle(limit: int) -> None:
    """Keep up to `limit` bytes of freed large arrays' pages for reuse by empty() (0: none).
    For a process that frees and allocates tensors in a stream, as the filter's checkout does;
    the kept pages count as its memory until it ends or the limit drops."""
    _recycled.set_limit(limit)


def carve(sizes: list[int], align: int = 64) -> "list[np.ndarray]":
    """Byte buffers of the given sizes cut from one area (huge pages when large, see `empty`):
    many medium tensors then cost a few large page faults instead of one small one per 4 KiB.
    The area is freed when the last of its buffers is."""
    import numpy as np

    offsets, total = [], 0
    for n in sizes:
        offsets.append(total)
        total += -(-n // align) * align
    area = empty(total, np.uint8)
    return [area[o : o + n] for o, n in zip(offsets, sizes)]


def touch(buffers: "list[np.ndarray]") -> None:
    """Fault the buffers' pages in now (one write per page), so that whoever fills them later
    does not pay for it: done on an idle thread, it takes page faults off a critical path."""
    import numpy as np

    for buf in buffers:
        flat = buf.reshape(-1).view(np.uint8)
        flat[:: mmap.PAGESIZE] = 0
