"""The repository's Git LFS object store, written directly: .git/lfs/objects/aa/bb/<sha256>.

hashlib, tempfile and concurrent.futures are imported where used: the pre-push hook, which only
lists and links objects, spent ~6 ms of its ~50 ms of imports on them here."""

from __future__ import annotations

import contextlib
import copy
import errno
import mmap
import os
import threading
from collections import deque

from git_theta import config, memory
from git_theta.errors import CorruptObjectError, ThetaError
from git_theta.git import repo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see git_theta.dtypes

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

_CACHE_OBJECT_BYTES = 64 << 20
_CACHE_OBJECTS = 8


_DIRECT_ALIGN = 4096  # offsets, sizes and addresses of O_DIRECT writes: the common block size
_DIRECT_BLOCK = 4 << 20
# a checkout's file: 498 MB to this VM's disk (O_DIRECT, fsync) went at 1.4-1.55 GB/s in 4 MiB
# writes, 1.6-1.9 GB/s in 16 MiB ones, and the disk is what a checkout waits on last
CHECKOUT_BLOCK = 16 << 20
_staging = threading.local()


def _address(mv: memoryview) -> int:
    """Where a buffer's first byte is in memory."""
    import numpy as np

    return np.frombuffer(mv, np.uint8).__array_interface__["data"][0]


def _direct(fd: int) -> bool:
    """Switch an open file to O_DIRECT; False where the system or file system has no such thing."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | flag)
        return True
    except OSError:  # tmpfs and some others refuse it
        return False


class _DirectFile:
    """A write-only file fed through O_DIRECT in aligned blocks: objects go to the disk without
    passing through (and growing) the page cache. Filling fresh page-cache pages is what writing
    costs on a VM whose memory is faulted in lazily (measured here: 320 MB in 0.3-1.3 s buffered,
    0.3 s direct, a tenth of the CPU). Falls back to plain writes if the file system refuses one.

    Several staging blocks (`depth`): while earlier ones go to the disk on a writer thread the
    next one fills, so the copy and the device overlap (498 MB here: 0.33-0.45 s one block at a
    time, 0.26-0.28 s with two; a checkout queues four, see CHECKOUT_BLOCK).

    Against plain buffered writes (GIT_THETA_DIRECT_IO=0), benchmarks/bench_lowlevel.py, medians
    of 15 interleaved rounds on a loaded 2-core VM, ext4 with online discard, page cache dropped
    before each: GPT-2-small checkout 4.08 s wall, 1.19 s CPU against 5.62 s, 1.74 s (same
    285 MB peak), page cache warm 1.29 s, 1.23 s against 2.47 s, 1.86 s; its `git add` with
    GIT_THETA_DIRECT_IO=1 7.54 s, 2.28 s against 8.34 s, 2.57 s."""

    def __init__(self, fd: int, block: int = _DIRECT_BLOCK, depth: int = 2, in_place: bool = False):
        self.fd, self.size, self.fill, self.direct, self.block = fd, 0, 0, True, block
        self.in_place = in_place  # write decoded tensors from where they are (see write)
        # aligned staging buffers per thread and shape, reused (fresh pages cost); a second file
        # open on the same thread at once gets its own
        self.shared = not getattr(_staging, "busy", False)
        if not hasattr(_staging, "bufs"):
            _staging.bufs = {}
        bufs = _staging.bufs.get((block, depth)) if self.shared else None
        if bufs is None:
            bufs = [mmap.mmap(-1, block) for _ in range(depth)]
            if self.shared:
                _staging.bufs[block, depth] = bufs
        if self.shared:
            _staging.busy = True
        self.blocks = [memoryview(b) for b in bufs]
        self.index = 0
        self.view = self.blocks[0]
        self.writer: ThreadPoolExecutor | None = None
        self.busy: list[Future | None] = [None] * depth  # each block's write in flight
        self.pending: deque[tuple[Future, int]] = deque()  # every write in flight, and its bytes
        self.queued = 0

    def write(self, data) -> int:
        mv = memoryview(data).cast("B")
        n = len(mv)
        if self.in_place and self.direct and n >= memory.PLACE_MIN_BYTES and self._in_place(mv):
            # a decoded tensor aligned as it will sit in the file (memory.placed): its whole pages
            # go to the disk from where they are; only its partial first and last ones are copied
            head = -self.size % _DIRECT_ALIGN
            body = (n - head) // _DIRECT_ALIGN * _DIRECT_ALIGN
            self._stage(mv[:head])
            if self.fill:
                self._hand_off()
            self._submit(mv[head : head + body])
            self._stage(mv[head + body :])
        else:
            self._stage(mv)
        self.size += n
        return n

    def _in_place(self, mv: memoryview) -> bool:
        """Whether `mv` can be written from where it is: at the file position's offset within a
        page, and in a decoded tensor's array (memory.owns), which nothing changes before it
        is freed, and which the queued write keeps alive until then."""
        address = _address(mv)
        return address % _DIRECT_ALIGN == self.size % _DIRECT_ALIGN and memory.owns(address, len(mv))

    def _stage(self, mv: memoryview) -> None:
        """Copy into the staging blocks, each sent to the disk when full."""
        pos, n = 0, len(mv)
        while pos < n:
            take = min(self.block - self.fill, n - pos)
            self.view[self.fill : self.fill + take] = mv[pos : pos + take]
            self.fill += take
            pos += take
            if self.fill == self.block:
                self._hand_off()

    def _submit(self, mv: memoryview) -> Future:
        """Queue a write for the writer thread, after waiting for the oldest ones while more than
        the staging blocks' worth is queued (what is queued is held in memory until written)."""
        if self.writer is None:  # only files past one block get a thread
            from concurrent.futures import ThreadPoolExecutor

            self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="git-theta-write")
        while self.pending and self.queued + len(mv) > self.block * len(self.blocks):
            done, size = self.pending.popleft()
            self.queued -= size
            done.result()
        future = self.writer.submit(self._write_all, mv)
        self.pending.append((future, len(mv)))
        self.queued += len(mv)
        return future

    def _hand_off(self) -> None:
        """Send the filled part of the block (a whole number of pages, or all of it) to the
        writer thread and fill the next one meanwhile, once its own last write is done."""
        self.busy[self.index] = self._submit(self.view[: self.fill])
        self.index = (self.index + 1) % len(self.blocks)
        if self.busy[self.index] is not None:
            self.busy[self.index].result()
            self.busy[self.index] = None
        self.view = self.blocks[self.index]
        self.fill = 0

    def _wait(self) -> None:
        while self.pending:
            done, size = self.pending.popleft()
            self.queued -= size
            done.result()
        self.busy = [None] * len(self.blocks)

    def _write_all(self, mv: memoryview) -> None:
        while len(mv):
            try:
                mv = mv[os.write(self.fd, mv) :]
            except OSError as exc:
                if not self.direct or exc.errno != errno.EINVAL:
                    raise
                self._plain()  # the file system takes O_DIRECT opens but not these writes

    def _plain(self) -> None:
        import fcntl

        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) & ~os.O_DIRECT)
        self.direct = False

    def flush(self) -> None:
        """Write what is staged: the last block padded to the alignment, then cut to size."""
        self._wait()
        if not self.fill:
            return
        fill, self.fill = self.fill, 0
        padded = -(-fill // _DIRECT_ALIGN) * _DIRECT_ALIGN if self.direct else fill
        self.view[fill:padded] = bytes(padded - fill)
        self._write_all(self.view[:padded])
        if padded != fill:
            os.ftruncate(self.fd, self.size)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        try:
            self._wait()
        except OSError:
            pass  # closing after a failed write: the caller has the error already
        finally:
            if self.writer is not None:
                self.writer.shutdown(wait=True)
                self.writer = None
        if self.shared:
            _staging.busy = self.shared = False
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


_HASH_PIECE = 16 << 20


def verify_file(path: str, oid: str) -> bool:
    """Whether the file at `path` hashes to `oid` (read through a map, pages dropped as hashed)."""
    import hashlib

    with open(path, "rb") as f:
        if not os.fstat(f.fileno()).st_size:
            return hashlib.sha256(b"").hexdigest() == oid
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _verified_digest(data) == oid


def _verified_digest(data) -> str:
    """sha256 of an object, a mapped one piece by piece with each piece's pages dropped from this
    process once hashed (they stay in the page cache for the decode): otherwise a whole object
    counts as our memory until its decode ends, and a checkout of GPT-2-small whose largest
    tensor is rebuilt from two objects peaked at 600 MB, over the model's size."""
    import hashlib

    if not isinstance(data, mmap.mmap) or len(data) <= _HASH_PIECE or not hasattr(mmap, "MADV_DONTNEED"):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(data)
    try:
        for start in range(0, len(data), _HASH_PIECE):
            stop = min(start + _HASH_PIECE, len(data))
            digest.update(view[start:stop])
            try:
                data.madvise(mmap.MADV_DONTNEED, start, stop - start)
            except (OSError, ValueError):
                pass
    finally:
        view.release()
    return digest.hexdigest()


class ObjectWriter:
    """A file-like sink that hashes what it is given and lands it in the store atomically."""

    def __init__(self, store: LfsStore):
        self.store = store
        import hashlib
        import tempfile

        store.ensure_dir(store.tmp_dir)
        fd, self.tmp_path = tempfile.mkstemp(dir=store.tmp_dir, prefix="theta-")
        self.file = (
            _DirectFile(fd) if store.direct_io and _direct(fd) else os.fdopen(fd, "wb", buffering=1 << 20)
        )
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.digest.update(data)
        self.file.write(data)
        n = len(memoryview(data).cast("B"))
        self.size += n
        return n

    def commit(self) -> tuple[str, int]:
        """Flush, fsync, close, then move into place under the object's oid; returns (oid, size).

        A kill (or power loss, thanks to the fsync) at any point leaves a temp file that prune
        removes, never a partial object under a valid name."""
        try:
            self.file.flush()
            if self.store.fsync:
                os.fsync(self.file.fileno())
            self.file.close()
        except BaseException:  # disk full at the last write, say: leave nothing behind
            self.abort()
            raise
        oid = self.digest.hexdigest()
        final = self.store.path(oid)
        if os.path.exists(final):
            os.unlink(self.tmp_path)
            _freshen(final)
        else:
            self.store.ensure_dir(os.path.dirname(final))
            os.chmod(self.tmp_path, 0o644)
            os.replace(self.tmp_path, final)
        return oid, self.size

    def abort(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # its buffered bytes could not be written: they are dropped with the file
        if os.path.exists(self.tmp_path):
            os.unlink(self.tmp_path)


def _freshen(path: str) -> None:
    """Mark an object that is written again as new, as git freshens a loose object it writes
    again: `git theta prune` spares objects younger than its grace period, and an old object
    nothing referred to may be what a running command is about to refer to."""
    try:
        os.utime(path)
    except OSError:  # not ours to touch (a shared or read-only store): the lock still protects it
        pass


class LfsStore:
    """Read and write LFS objects by oid; every read is checked against its oid."""

    def __init__(self, common_dir: str, bulk: bool = False, cwd: str | None = None):
        """`cwd`: a folder of the repository to read its config in (default: the git dir)."""
        self.common_dir = common_dir
        storage = repo.config_get("lfs.storage", cwd=cwd or common_dir)
        base = os.path.join(common_dir, storage) if storage else os.path.join(common_dir, "lfs")
        self.objects_dir = os.path.join(base, "objects")
        self.tmp_dir = os.path.join(base, "tmp")
        self._dirs: set[str] = set()
        self.fsync = config.get_bool("fsync")
        # O_DIRECT for bulk writers (a training loop's saves: gigabytes nobody reads back soon);
        # git add keeps its objects in the page cache, where the checkout or push that follows
        # finds them
        setting = config.get_switch("direct_io")
        self.direct_io = bulk if setting is None else setting
        self._small: dict[str, object] = {}  # verified small objects, oldest first
        self._lock = threading.Lock()
        self.check_objects = True
        self._unchecked: LfsStore | None = None
        # objects linked in unhashed by this process for tensors whose content it checks (see
        # transfer.fetch): one that then fails its own check is not ours to keep
        self.unhashed: set[str] = set()

    def content_checked(self) -> LfsStore:
        """This store, reading objects without hashing them, for a caller that checks every tensor
        it rebuilds against its content hash (updates.chain.load_entry), which covers the objects
        read: one sha256 per byte instead of two (GPT-2-small checkout: 79 of 570 thread samples
        were the object hash). Made once per store, so its small-object cache (packs mapped once,
        not once per tensor) lasts as long as the store's own."""
        if self._unchecked is None:
            clone = copy.copy(self)
            clone._small, clone._lock, clone.check_objects = {}, threading.Lock(), False
            clone._unchecked = clone
            self._unchecked = clone
        return self._unchecked

    def ensure_dir(self, path: str) -> None:
        """makedirs once per folder per process (thousands of small tensors share 256 folders)."""
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    @classmethod
    def for_cwd(cls, cwd: str | None = None, bulk: bool = False) -> LfsStore:
        return cls(repo.common_dir(cwd), bulk, cwd=os.path.abspath(cwd or os.getcwd()))

    def path(self, oid: str) -> str:
        return os.path.join(self.objects_dir, oid[0:2], oid[2:4], oid)

    def has(self, oid: str) -> bool:
        return os.path.exists(self.path(oid))

    def writer(self) -> ObjectWriter:
        return ObjectWriter(self)

    def put(self, data: bytes) -> tuple[str, int]:
        w = self.writer()
        try:
            w.write(data)
        except BaseException:
            w.abort()
            raise
        return w.commit()

    def read_entry(self, entry, what: str = "object"):
        """The stored bytes of a parameter entry: its object, or its slice of a pack (packs)."""
        blob = self.read(entry.oid, what)
        where = entry.extra.get("pack")
        if where is None:
            return blob
        try:
            offset, length = (int(x) for x in where)
        except (TypeError, ValueError):
            raise ThetaError(f"metadata of {what} has a malformed pack slice {where!r}") from None
        if offset < 0 or length < 0 or offset + length > len(blob):
            raise ThetaError(f"metadata of {what} points past the end of LFS object {entry.oid[:12]}")
        return memoryview(blob)[offset : offset + length]

    def read(self, oid: str, what: str = "object"):
        """The object's bytes (a read-only map of the file), verified; ThetaError when missing or corrupt.

        Small objects (packs, read once per tensor in them) are verified once and kept mapped."""
        cached = self._small.get(oid)
        if cached is not None:
            return cached
        data = self._read(oid, what)
        if len(data) <= _CACHE_OBJECT_BYTES:
            with self._lock:
                self._small[oid] = data
                while len(self._small) > _CACHE_OBJECTS:
                    self._small.pop(next(iter(self._small)))
        return data

    def map_unverified(self, oid: str):
        """A read-only map of the object without checking its checksum, or None when it is missing:
        only for guesses that cost nothing when wrong (sampling a previous value to choose how to
        store a new one; the new value is stored exactly either way)."""
        try:
            with open(self.path(oid), "rb") as f:
                if not os.fstat(f.fileno()).st_size:
                    return None
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError:
            return None

    def prefetch(self, oids: list[str]) -> None:
        """Have the kernel read these objects into the page cache now, in this order, on a
        thread (posix_fadvise WILLNEED): objects this store wrote with O_DIRECT are not cached,
        and a checkout then read them one page fault at a time, waiting on the disk for each."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is None or not oids:
            return

        def run() -> None:
            for oid in oids:
                try:
                    fd = os.open(self.path(oid), os.O_RDONLY)
                except OSError:
                    continue  # missing: the read says so
                try:
                    advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                except OSError:
                    pass
                finally:
                    os.close(fd)

        threading.Thread(target=run, name="git-theta-prefetch", daemon=True).start()

    def _read(self, oid: str, what: str):
        try:
            with open(self.path(oid), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise ThetaError(
                f"LFS object {oid[:12]} for {what} is missing; run `git theta fetch` or `git lfs fetch`"
            ) from None
        if self.check_objects and _verified_digest(data) != oid:
            if oid in self.unhashed:  # taken from a remote on this machine unchecked: drop it
                with contextlib.suppress(OSError):
                    os.unlink(self.path(oid))
            raise CorruptObjectError(
                f"LFS object {oid[:12]} for {what} is corrupt (checksum mismatch); delete {self.path(oid)} and fetch it again"
            )
        return data
