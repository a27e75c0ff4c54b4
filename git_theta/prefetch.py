"""Fetching, in one batch, every object a checkpoint's metadata needs before it is rebuilt (shared
by smudge, diffs, the merge driver and the merge CLI, above updates and storage)."""

from git_theta.errors import ThetaError
from git_theta.metadata import Metadata
from git_theta.storage import transfer, verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import objects_of


def ensure_objects(meta: Metadata, store: LfsStore, cwd: str | None, path: str) -> list[str]:
    """Fetch, in one batch, every object the metadata needs that the store lacks; returns the
    oids of all the objects it needs, in the order its entries read them."""
    needed: dict[str, int] = {}
    checked: set[str] = set()  # objects only of entries whose content load_tensors checks
    trusted: set[str] = set()
    how = verified.mode()
    for name, entry in meta.params.items():
        try:
            objects = objects_of(entry, name)
        except ThetaError as exc:
            raise ThetaError(str(exc), path) from None
        needed.update(objects)
        if how == verified.ALWAYS or (how == verified.ONCE and not verified.is_verified(store, entry)):
            checked.update(objects)
        else:
            trusted.update(objects)
    transfer.fetch(store, needed, cwd or ".", what=path, content_checked=checked - trusted)
    return list(needed)
