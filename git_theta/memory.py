"""Allocator tuning for the filter: reuse freed buffers instead of faulting in fresh pages.

Each tensor passes through several chunk-sized buffers; with glibc's defaults every one is a
fresh mmap, and page faults cost more than the codec (measured here: a GPT-2-small smudge went
from 1.7 s to 1.15 s, 300k to 145k page faults). Memory use does not grow: buffers are reused.
"""

import ctypes
import ctypes.util
import mmap
import sys
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
    pages ~0.05 s. Freed with its last view, like any array."""
    import numpy as np

    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if np.ndim(shape) else int(shape)
    nbytes = count * dt.itemsize
    if nbytes < HUGE_MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(shape, dtype=dt)
    area = mmap.mmap(-1, -(-nbytes // HUGE_PAGE) * HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        area.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # huge pages switched off ("never"): ordinary pages
        pass
    return np.frombuffer(area, dtype=dt, count=count).reshape(shape)


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
