"""Allocator tuning for the filter: reuse freed buffers instead of faulting in fresh pages.

Each tensor passes through several chunk-sized buffers; with glibc's defaults every one is a
fresh mmap, and page faults cost more than the codec (measured here: a GPT-2-small smudge went
from 1.7 s to 1.15 s, 300k to 145k page faults). Memory use does not grow: buffers are reused.
"""

import contextlib
import mmap
import sys
import threading
import weakref
from collections.abc import Iterator

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see git_theta.dtypes

if TYPE_CHECKING:
    import numpy as np

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
HUGE_PAGE = 2 << 20
HUGE_MIN_BYTES = 8 << 20  # smaller buffers stay on the heap (rounding would waste more)
PLACE_MIN_BYTES = 1 << 20  # smaller tensors are not placed (see placed): copying them costs less


def available_bytes() -> int:
    """Memory the kernel can give without swapping (MemAvailable), or 2**62 where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _glibc():
    """glibc, or None off Linux or where it is not the C library."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: the pre-push hook imports this module (through storage) but not this
    import ctypes.util

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
    pages are kept for the next large array instead. Inside placed(), an array of that size
    starts at the given offset within a page.

    Against np.empty (numpy asks for huge pages itself from 4 MiB), benchmarks/bench_lowlevel.py,
    GPT-2-small checkout, medians of 15 interleaved rounds on a loaded 2-core VM (ext4, online
    discard, page cache dropped): 4.08 s wall, 1.19 s CPU, 285 MB peak against 4.66 s, 1.34 s,
    339 MB; page cache warm, 1.29 s, 1.23 s against 1.56 s, 1.37 s (np.empty neither recycles
    pages nor places tensors for in-place O_DIRECT writes)."""
    import numpy as np

    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if np.ndim(shape) else int(shape)
    nbytes = count * dt.itemsize
    phase = getattr(_placing, "phase", None) if nbytes == getattr(_placing, "nbytes", -1) else None
    huge = nbytes >= HUGE_MIN_BYTES and hasattr(mmap, "MADV_HUGEPAGE")
    if not huge and phase is None:
        return np.empty(shape, dtype=dt)
    size = -(-(nbytes + (phase or 0)) // HUGE_PAGE) * HUGE_PAGE
    area = _recycled.take(size)
    if area is None:
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                area.madvise(mmap.MADV_HUGEPAGE)
            except OSError:  # huge pages switched off ("never"): ordinary pages
                pass
    # every view and memoryview of the array keeps `raw` alive (numpy points views at the array
    # whose base holds the buffer), so what is tied to `raw` happens only when nothing can reach it
    raw = np.frombuffer(area, dtype=np.uint8, count=nbytes, offset=phase or 0)
    if _recycled.limit:
        weakref.finalize(raw, _recycled.give, area)
    if phase is not None:
        start = raw.__array_interface__["data"][0]
        with _owned_lock:
            _owned[start] = start + nbytes
        weakref.finalize(raw, _disown, start)
    return raw.view(dt).reshape(shape)


_placing = threading.local()
_owned: dict[int, int] = {}  # start -> end of the live arrays made inside placed()
_owned_lock = threading.RLock()  # re-entered when a collection under it frees such an array


def _disown(start: int) -> None:
    with _owned_lock:
        _owned.pop(start, None)


@contextlib.contextmanager
def placed(nbytes: int, phase: int) -> Iterator[None]:
    """Make the arrays of exactly `nbytes` that empty() gives on this thread meanwhile start
    `phase` bytes into a page: a tensor decoded where it falls at that offset in the file it is
    written to can go to the disk from where it is (see lfs_store._DirectFile)."""
    before = getattr(_placing, "nbytes", -1), getattr(_placing, "phase", None)
    _placing.nbytes, _placing.phase = nbytes, phase % mmap.PAGESIZE
    try:
        yield
    finally:
        _placing.nbytes, _placing.phase = before


def owns(address: int, nbytes: int) -> bool:
    """Whether [address, address + nbytes) lies in one live array made inside placed(): memory
    that nothing writes to again before it is freed (a decoded tensor)."""
    with _owned_lock:
        live = dict(_owned)  # a collection while iterating could free one of them
    return any(start <= address and address + nbytes <= end for start, end in live.items())


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
