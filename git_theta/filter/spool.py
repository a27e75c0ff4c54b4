"""Holds the content git streams to the filter: the file it came from, in memory, or spilled to a
mapped temp file.

For `git add`, what git streams is the file in the work tree, which git has just read (its pages
are in the page cache). The spool compares the stream with that file as it arrives and, when they
are the same, hands out the file's pages instead of a copy: receiving GPT-2-small's 498 MB then
took 0.35-0.5 s here instead of 0.8-1.7 s copying it into fresh memory (this VM faults fresh pages
in slowly). Any difference (content from stdin, a file edited since) falls back to a copy; a
file changed after the comparison fails the add (Spool.source_unchanged), and one truncated
meanwhile ends the filter with SIGBUS, which git reports as a failed add (nothing is recorded).

With GIT_THETA_LOW_MEMORY=1, or once the content passes a share of available memory
(GIT_THETA_LOW_MEMORY_SHARE, default 0.5), it goes to a file beside the repository and is read
through a read-only mmap: the kernel can drop those pages under pressure, so a checkpoint larger
than free memory still goes through.
"""

import mmap
import os
import stat
import tempfile

from git_theta import config, memory
from git_theta.errors import ThetaError


def spill_threshold() -> int:
    """Bytes of content held in memory before spilling to disk."""
    if config.get_bool("low_memory"):
        return 0
    share = config.get_float("low_memory_share")
    if share is None or share <= 0:
        share = 0.5
    return int(memory.available_bytes() * share)


_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if os.uname().sysname == "Linux" else 0)


def _reserve(nbytes: int) -> mmap.mmap | None:
    """Address space for up to `nbytes` of content, memory only as it is written, in huge pages
    where the kernel offers them; None where that cannot be had."""
    size = -(-max(nbytes, 1) // memory.HUGE_PAGE) * memory.HUGE_PAGE
    try:
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
    except (OSError, ValueError, OverflowError):
        return None
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            area.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
    return area


class _Source:
    """A regular file the content may be: the stream is compared with it piece by piece (in a
    reused buffer, so nothing is faulted in) until it differs or ends."""

    SCRATCH = 1 << 20

    def __init__(self, fd: int, st: os.stat_result):
        import numpy as np

        self.fd, self.st = fd, st
        self.map = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        self.file = np.frombuffer(self.map, dtype=np.uint8)
        self.scratch = np.empty(self.SCRATCH, dtype=np.uint8)
        self.fill = 0  # bytes in scratch not yet compared
        self.matched = 0  # bytes of the file the stream has matched

    @classmethod
    def open(cls, path: str) -> "_Source | None":
        """The file at `path` when it is a regular, non-empty one; else None (never blocks: a
        FIFO there is opened non-blocking and refused)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                return cls(fd, st)
        except (OSError, ValueError):
            pass
        os.close(fd)
        return None

    def room(self, n: int) -> memoryview | None:
        """Scratch for the next `n` streamed bytes; None when they cannot be the file's."""
        if self.fill + n > self.SCRATCH and not self.compare():
            return None
        if n > self.SCRATCH or self.matched + self.fill + n > len(self.file):
            return None
        return memoryview(self.scratch)[self.fill : self.fill + n]

    def compare(self) -> bool:
        """Whether the scratch holds the file's next bytes (it is emptied when it does)."""
        import numpy as np

        if not self.fill:
            return True
        lo, hi = self.matched, self.matched + self.fill
        if hi > len(self.file) or not np.array_equal(self.scratch[: self.fill], self.file[lo:hi]):
            return False
        self.matched, self.fill = hi, 0
        return True

    def whole(self) -> bool:
        """Whether the stream so far is the whole file."""
        return self.compare() and self.matched == len(self.file)

    def unchanged(self) -> bool:
        """Whether the file is as it was when it was opened (its pages are what was streamed)."""
        try:
            now = os.stat(self.fd)
        except OSError:
            return False
        return (now.st_size, now.st_mtime_ns, now.st_ctime_ns, now.st_ino) == (
            self.st.st_size,
            self.st.st_mtime_ns,
            self.st.st_ctime_ns,
            self.st.st_ino,
        )

    def close(self) -> None:
        del self.file
        try:
            self.map.close()
        except BufferError:  # a view is still alive; the map closes when it is collected
            pass
        os.close(self.fd)


class Spool:
    """A write-once buffer: write() chunks (or reserve() room and read straight into it), then
    view() the whole content without a copy.

    In memory the content goes into one reserved anonymous mapping in huge pages: a bytearray
    grown packet by packet faulted in 4 KiB pages one at a time (git add of GPT-2-small: 0.82 s
    of the filter's main thread receiving 498 MB, against ~0.2 s read straight into the area)."""

    def __init__(self, tmp_dir: str | None = None, threshold: int | None = None, source: str | None = None):
        """`source`: the file the content probably is (see the module's docstring)."""
        self.tmp_dir = tmp_dir
        self.threshold = spill_threshold() if threshold is None else threshold
        self.memory: mmap.mmap | bytearray | None = None
        self.size = 0
        self.file = None
        self.map: mmap.mmap | None = None
        self._base: int | None = None
        self._spilled = False
        self._source = _Source.open(source) if source else None
        self._from_source: _Source | None = None  # the source, once the content is known to be it

    def _leave_source(self) -> None:
        """The stream is not the source file: hold what matched, and what is pending, as a copy."""
        src, self._source = self._source, None
        matched, pending = src.matched, bytes(src.scratch[: src.fill])
        self.size = 0
        for start in range(0, matched, 64 << 20):
            self.write(src.file[start : min(start + (64 << 20), matched)])
        self.write(pending)
        src.close()

    def reserve(self, n: int) -> memoryview | None:
        """Room for the next `n` bytes in memory (fill it, then commit(n)); None once spilled
        or past the threshold (write() them instead)."""
        if self._source is not None:
            room = self._source.room(n)
            if room is not None:
                return room
            self._leave_source()
        if self._spilled or self.size + n > self.threshold:
            return None
        if self.memory is None:
            self.memory = _reserve(self.threshold) or bytearray()  # no address space: grow a bytearray
        if isinstance(self.memory, bytearray) and len(self.memory) < self.size + n:
            self.memory.extend(bytes(self.size + n - len(self.memory)))
        return memoryview(self.memory)[self.size : self.size + n]

    def commit(self, n: int) -> None:
        self.size += n
        if self._source is not None:
            self._source.fill += n

    def write(self, data) -> None:
        n = len(memoryview(data).cast("B"))
        room = self.reserve(n)
        if room is not None:
            room[:] = memoryview(data).cast("B")
            room.release()
            self.commit(n)
            return
        if not self._spilled:
            self._spill()
        self.file.write(data)

    def _spill(self) -> None:
        if self.tmp_dir:
            os.makedirs(self.tmp_dir, exist_ok=True)
        self.file = tempfile.TemporaryFile(dir=self.tmp_dir, prefix="theta-spool-")
        if self.memory is not None:
            with memoryview(self.memory)[: self.size] as held:
                self.file.write(held)
            if isinstance(self.memory, mmap.mmap):
                self.memory.close()
            self.memory = None
        self._spilled = True

    @property
    def from_source(self) -> bool:
        """Whether view() is the source file's pages rather than a copy."""
        return self._from_source is not None

    def source_unchanged(self) -> bool:
        """False when view() is the source file's pages and the file has changed since it was
        compared with the stream (what was read from it may then not be what git sent)."""
        return self._from_source is None or self._from_source.unchanged()

    def check_unchanged(self, path: str) -> None:
        """After the content was used: ThetaError when it may not be what git sent (see above)."""
        if not self.source_unchanged():
            raise ThetaError(f"{path} changed while git was adding it; run `git add {path}` again")

    @property
    def spilled(self) -> bool:
        return self.file is not None

    def view(self) -> memoryview:
        import numpy as np

        if self._source is not None:
            if self._source.whole():
                src, self._source, self._from_source = self._source, None, self._source
                self.map = src.map
                view = memoryview(src.map)
                self._base = np.frombuffer(view, dtype=np.uint8).ctypes.data
                return view
            self._leave_source()
        if not self._spilled:
            return memoryview(self.memory)[: self.size] if self.memory is not None else memoryview(b"")
        self.file.flush()
        if self.file.tell() == 0:
            return memoryview(b"")
        self.map = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(self.map)
        self._base = np.frombuffer(view, dtype=np.uint8).ctypes.data
        return view

    def release(self, part) -> None:
        """Drop the pages under `part` (a slice of view()) from this process once it is done
        with them: mapped pages count as its memory until then, the page cache keeps them."""
        if self.map is None or self._base is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        import numpy as np

        part = memoryview(part).cast("B")
        if not part.nbytes:
            return
        lo = np.frombuffer(part, dtype=np.uint8).ctypes.data - self._base
        hi = lo + part.nbytes
        if lo < 0 or hi > len(self.map):
            return  # not ours (a converted copy)
        start = lo // mmap.PAGESIZE * mmap.PAGESIZE
        try:
            self.map.madvise(mmap.MADV_DONTNEED, start, hi - start)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        for src in (self._source, self._from_source):
            if src is not None:
                if src.map is self.map:
                    self.map = None
                src.close()
        self._source = self._from_source = None
        if isinstance(self.memory, mmap.mmap):
            try:
                self.memory.close()
            except BufferError:  # a view is still alive; the area goes when it is collected
                pass
        self.memory = None
        if self.map is not None:
            try:
                self.map.close()
            except BufferError:  # a view is still alive; the map closes when it is collected
                pass
            self.map = None
        if self.file is not None:
            self.file.close()
            self.file = None
