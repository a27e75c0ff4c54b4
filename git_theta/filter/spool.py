"""Holds the content git streams to the filter: in memory, or spilled to a mapped temp file.

With GIT_THETA_LOW_MEMORY=1, or once the content passes a share of available memory
(GIT_THETA_LOW_MEMORY_SHARE, default 0.5), it goes to a file beside the repository and is read
through a read-only mmap: the kernel can drop those pages under pressure, so a checkpoint larger
than free memory still goes through.
"""

import mmap
import os
import tempfile

import numpy as np

from git_theta import config


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def spill_threshold() -> int:
    """Bytes of content held in memory before spilling to disk."""
    if config.get_bool("low_memory"):
        return 0
    share = config.get_float("low_memory_share")
    if share is None or share <= 0:
        share = 0.5
    return int(_available_memory() * share)


class Spool:
    """A write-once buffer: write() chunks, then view() the whole content without a copy."""

    def __init__(self, tmp_dir: str | None = None, threshold: int | None = None):
        self.tmp_dir = tmp_dir
        self.threshold = spill_threshold() if threshold is None else threshold
        self.memory: bytearray | None = bytearray()
        self.file = None
        self.map: mmap.mmap | None = None
        self._base: int | None = None

    def write(self, data) -> None:
        if self.memory is not None:
            self.memory += data
            if len(self.memory) > self.threshold:
                self._spill()
        else:
            self.file.write(data)

    def _spill(self) -> None:
        if self.tmp_dir:
            os.makedirs(self.tmp_dir, exist_ok=True)
        self.file = tempfile.TemporaryFile(dir=self.tmp_dir, prefix="theta-spool-")
        self.file.write(self.memory)
        self.memory = None

    @property
    def spilled(self) -> bool:
        return self.file is not None

    def view(self) -> memoryview:
        if self.memory is not None:
            return memoryview(self.memory)
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
