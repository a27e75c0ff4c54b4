"""The update-type plug-in interface (entry point group git_theta.plugins.updates)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from git_theta.errors import ThetaError
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.objects import ObjectStore
from git_theta.tensor import RawTensor
from git_theta.updates import chain


@dataclass
class Held:
    """What a caller still holds in memory of a parameter's previous version (a training loop
    saving every step): changes are then computed without decoding what was stored."""

    value: RawTensor | None  # the previous value, or None when only `windows` of it were kept
    snapshot: RawTensor  # the value of the snapshot the previous entry's chain starts from
    windows: object = None  # sampled windows of the previous value (sparse.sample_windows)


@dataclass
class UpdateContext:
    """What storing a parameter may use besides its new value: the store, the previous entry
    (HEAD's), side data from `git theta add --update-data` naming this parameter, and what is
    already in memory of the previous values (decoded once, on first use)."""

    store: ObjectStore
    name: str
    previous: ParamEntry | None = None
    side: dict[str, RawTensor] | None = None
    previous_value: RawTensor | None = field(default=None, repr=False)
    snapshot: RawTensor | None = field(default=None, repr=False)
    # sampled windows of the previous value, when a caller that keeps them knows the snapshot
    # value but not the previous value itself (see Held)
    previous_windows: object = field(default=None, repr=False)

    @classmethod
    def holding(
        cls,
        store: LfsStore,
        name: str,
        previous: ParamEntry | None,
        side: dict[str, RawTensor] | None,
        held: Held | None,
    ) -> "UpdateContext":
        """A context that starts from what the caller `held` of the previous values (if anything)."""
        if held is None:
            return cls(store, name, previous, side)
        return cls(store, name, previous, side, held.value, held.snapshot, held.windows)

    def previous_usable(self) -> bool:
        """A previous entry exists and every object it needs is in the local store."""
        if self.previous is None:
            return False
        try:
            return all(self.store.has(oid) for oid in chain.objects(self.previous, self.name))
        except ThetaError:
            return False

    def previous_values(self) -> tuple[RawTensor, RawTensor]:
        """(previous value, value of the snapshot its chain starts from); rebuilt once."""
        if self.previous_value is None:
            self.previous_value, self.snapshot = chain.rebuild(
                self.previous, self.store, self.name, keep_snapshot=True
            )
        return self.previous_value, self.snapshot

    def snapshot_value(self) -> RawTensor:
        """The value of the snapshot the previous entry's chain starts from."""
        if self.snapshot is not None:
            return self.snapshot
        return self.previous_values()[1]

    def keep_snapshot_only(self) -> None:
        """Drop the previous value (keeping the snapshot) once it is no longer needed."""
        self.previous_value = None

    def release(self) -> None:
        """Drop the previous values so their memory goes before the next parameter's."""
        self.previous_value = self.snapshot = self.previous_windows = None


class Update(ABC):
    """How a parameter's new value is stored: whole (a snapshot) or as a change to what it was.

    Snapshot types implement `load`; change types (see updates.delta.DeltaUpdate) implement
    `read_parts` and `apply`, and their entries name the entry they build on.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    takes_side_data: bool = False  # reads GIT_THETA_UPDATE_DATA_PATH (git theta add --update-data)
    side_parts: tuple[str, ...] = ()  # the parts a side file gives per parameter (<name>/<part>)
    exact: bool = True  # False: without side data the stored value approximates the new one

    @abstractmethod
    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        """Write what is needed to rebuild `tensor` to the store; return its metadata entry.

        An entry whose `hash` is empty stores `tensor` exactly (the caller fills the hash in);
        a lossy type sets `hash` to the sha256 of the value it did store.
        """

    def own_objects(self, entry: ParamEntry) -> dict[str, int]:
        """LFS objects (oid -> size) of this step alone (not of what it builds on)."""
        return {entry.oid: entry.size}

    def load(self, entry: ParamEntry, store: LfsStore, name: str) -> RawTensor:
        """Rebuild a snapshot entry (one that builds on nothing)."""
        raise ThetaError(f"stored {self.name} update of parameter {name!r} has no base to apply to")
