"""The update-type plug-in interface (entry point group git_theta.plugins.updates)."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor


@dataclass
class UpdateContext:
    """What an update needs besides the tensor: the store, and the previous value if any."""

    store: LfsStore
    name: str
    previous: ParamEntry | None = None
    load_previous: Callable[[], RawTensor] | None = None


class Update(ABC):
    """Stores a parameter's new value, possibly as a change to its previous value, and loads it."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    takes_side_data: bool = False  # reads GIT_THETA_UPDATE_DATA_PATH (git theta add --update-data)

    @abstractmethod
    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        """Write what is needed to rebuild `tensor` to the store; return its metadata entry."""

    def objects(self, entry: ParamEntry) -> dict[str, int]:
        """LFS objects (oid -> size) that `load` will read, so they can be fetched in one batch."""
        return {entry.oid: entry.size}

    @abstractmethod
    def load(self, entry: ParamEntry, ctx: UpdateContext) -> RawTensor:
        """Rebuild the tensor that `entry` describes."""
