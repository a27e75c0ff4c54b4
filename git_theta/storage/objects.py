"""What storing and rebuilding tensors need of an object store, as small explicit interfaces.

The LFS store (storage.lfs_store) implements both; a pack being filled (storage.packs) writes
new objects into itself and reads existing ones through the LFS store it was given.
"""

from typing import Protocol


class ObjectWriting(Protocol):
    """A sink for one new object: bytes in, then commit() -> (oid, size) or abort()."""

    def write(self, data) -> int: ...

    def commit(self) -> tuple[str, int]: ...

    def abort(self) -> None: ...


class ObjectSource(Protocol):
    """Read-only LFS objects by oid (sha256 of their bytes): what rebuilding a stored tensor reads."""

    common_dir: str  # the repository's git common dir (where verified entries are recorded)
    check_objects: bool  # whether reads hash each object against its oid

    def has(self, oid: str) -> bool: ...

    def read(self, oid: str, what: str = "object"): ...

    def read_entry(self, entry, what: str = "object"): ...

    def map_unverified(self, oid: str): ...

    def content_checked(self) -> "ObjectSource": ...


class ObjectStore(ObjectSource, Protocol):
    """An object source that also takes new objects: what storing a tensor uses (it reads the
    previous version and writes the new one)."""

    def writer(self) -> ObjectWriting: ...
