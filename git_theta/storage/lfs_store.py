"""The repository's Git LFS object store, written directly: .git/lfs/objects/aa/bb/<sha256>."""

import hashlib
import mmap
import os
import tempfile
import threading

from git_theta import config
from git_theta.errors import ThetaError
from git_theta.git import repo

_CACHE_OBJECT_BYTES = 64 << 20
_CACHE_OBJECTS = 8


class ObjectWriter:
    """A file-like sink that hashes what it is given and lands it in the store atomically."""

    def __init__(self, store: "LfsStore"):
        self.store = store
        store.ensure_dir(store.tmp_dir)
        fd, self.tmp_path = tempfile.mkstemp(dir=store.tmp_dir, prefix="theta-")
        self.file = os.fdopen(fd, "wb", buffering=1 << 20)
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


class LfsStore:
    """Read and write LFS objects by oid; every read is checked against its oid."""

    def __init__(self, common_dir: str):
        self.common_dir = common_dir
        storage = repo.config_get("lfs.storage", cwd=common_dir)
        base = os.path.join(common_dir, storage) if storage else os.path.join(common_dir, "lfs")
        self.objects_dir = os.path.join(base, "objects")
        self.tmp_dir = os.path.join(base, "tmp")
        self._dirs: set[str] = set()
        self.fsync = config.get_bool("fsync")
        self._small: dict[str, object] = {}  # verified small objects, oldest first
        self._lock = threading.Lock()

    def ensure_dir(self, path: str) -> None:
        """makedirs once per folder per process (thousands of small tensors share 256 folders)."""
        if path not in self._dirs:
            os.makedirs(path, exist_ok=True)
            self._dirs.add(path)

    @classmethod
    def for_cwd(cls, cwd: str | None = None) -> "LfsStore":
        return cls(repo.common_dir(cwd))

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

    def _read(self, oid: str, what: str):
        try:
            with open(self.path(oid), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise ThetaError(
                f"LFS object {oid[:12]} for {what} is missing; run `git theta fetch` or `git lfs fetch`"
            ) from None
        if hashlib.sha256(data).hexdigest() != oid:
            raise ThetaError(
                f"LFS object {oid[:12]} for {what} is corrupt (checksum mismatch); delete {self.path(oid)} and fetch it again"
            )
        return data
