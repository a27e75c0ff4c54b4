"""Small parameters share LFS objects ("packs"): the stored forms of many small tensors back to
back in one object, each entry naming its slice (`theta_metadata.pack = [offset, length]`).

A checkpoint of 10,000 small tensors then writes, transfers and verifies a few dozen files
instead of 10,000 (creating a file costs ~0.5 ms here, more than encoding a small tensor).
Large tensors keep an object each, so unchanged ones are still shared between versions.
"""

import hashlib
import io
from collections.abc import Callable, Iterator

from git_theta import parallel
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.objects import ObjectSource, ObjectStore

PACK_KEY = "pack"
SMALL_BYTES = 1 << 20  # tensors up to this raw size are packed with others
PACK_BYTES = 32 << 20  # raw bytes of small tensors per pack


def plan(names: list[str], nbytes: Callable[[str], int], in_order: bool = False) -> list[list[str]]:
    """Jobs: each large tensor alone, small ones in batches of ~PACK_BYTES. Small tensors between
    large ones share batches unless `in_order` (readers that must yield in name order), where a
    large tensor closes the batch before it."""
    jobs: list[list[str]] = []
    batch: list[str] = []
    held = 0
    for name in names:
        size = nbytes(name)
        if size > SMALL_BYTES:
            if in_order and batch:
                jobs.append(batch)
                batch, held = [], 0
            jobs.append([name])
            continue
        if batch and held + size > PACK_BYTES:
            jobs.append(batch)
            batch, held = [], 0
        batch.append(name)
        held += size
    if batch:
        jobs.append(batch)
    return jobs


class _Slot:
    """One object written into the pack (ObjectWriting): its oid is the sha256 of its bytes, as
    any object's, and the pack records where those bytes lie (a batch stores its tensors one
    after another, so one slot is open at a time)."""

    def __init__(self, pack: "PackingStore"):
        self.pack, self.start, self.digest = pack, pack.buf.tell(), hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.pack.buf.write(data)

    def commit(self) -> tuple[str, int]:
        return self.pack._add(self.digest.hexdigest(), self.start, self.pack.buf.tell() - self.start)

    def abort(self) -> None:
        self.pack._drop(self.start)


class PackingStore:
    """An ObjectStore for a batch of small tensors: objects written land in one pack, which
    finish() writes to the LFS store and points the entries at; existing objects (previous
    versions) are read from the LFS store."""

    def __init__(self, store: LfsStore):
        self.store = store
        self.buf = io.BytesIO()
        self.slices: dict[str, list[int]] = {}  # oid of an object written here -> [offset, length]

    # ObjectSource: reads go to the LFS store (objects written here are not readable until finish)
    @property
    def common_dir(self) -> str:
        return self.store.common_dir

    @property
    def check_objects(self) -> bool:
        return self.store.check_objects

    def has(self, oid: str) -> bool:
        return self.store.has(oid)

    def read(self, oid: str, what: str = "object"):
        return self.store.read(oid, what)

    def read_entry(self, entry, what: str = "object"):
        return self.store.read_entry(entry, what)

    def map_unverified(self, oid: str):
        return self.store.map_unverified(oid)

    def content_checked(self) -> ObjectSource:
        return self.store.content_checked()

    def writer(self) -> _Slot:
        return _Slot(self)

    def _add(self, oid: str, start: int, length: int) -> tuple[str, int]:
        if oid in self.slices:  # the same bytes are in the pack already: one copy serves both
            self._drop(start)
        else:
            self.slices[oid] = [start, length]
        return oid, length

    def _drop(self, start: int) -> None:
        self.buf.seek(start)
        self.buf.truncate()

    def finish(self, entries: dict[str, ParamEntry]) -> dict[str, ParamEntry]:
        """Write the pack (or a lone object as itself); entries of objects in it point at their slices."""
        if not self.slices:
            return entries
        lone = len(self.slices) == 1
        data = self.buf.getbuffer()
        try:
            if lone:
                start, length = next(iter(self.slices.values()))
                oid, size = self.store.put(data[start : start + length])
            else:
                oid, size = self.store.put(data)
        finally:
            data.release()
        out = {}
        for name, entry in entries.items():
            where = self.slices.get(entry.oid)
            if where is None:
                out[name] = entry
                continue
            extra = dict(entry.extra)
            if not lone:
                extra[PACK_KEY] = where
            out[name] = entry.replace(oid=oid, size=size, extra=extra)
        self.buf, self.slices = io.BytesIO(), {}
        return out


def store_all(
    names: list[str],
    nbytes: Callable[[str], int],
    store_one: Callable[[str, ObjectStore], ParamEntry],
    store: LfsStore,
) -> Iterator[dict[str, ParamEntry]]:
    """store_one(name, store) for every name on worker threads, small tensors packed; yields
    {name: entry} per job (jobs are not in name order: callers order the entries)."""

    def job(names_: list[str]) -> dict[str, ParamEntry]:
        if len(names_) == 1 and nbytes(names_[0]) > SMALL_BYTES:
            return {names_[0]: store_one(names_[0], store)}
        packer = PackingStore(store)
        return packer.finish({n: store_one(n, packer) for n in names_})

    jobs = plan(names, nbytes)
    # results are small entries: workers need not wait behind one large tensor
    yield from parallel.ordered_map(job, jobs, ahead=len(jobs))
