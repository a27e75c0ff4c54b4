"""Storing one tensor through an update type: the single path used by clean, merges and the API."""

from git_theta import plugins
from git_theta.errors import ThetaError
from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.storage import verified
from git_theta.storage.objects import ObjectStore
from git_theta.tensor import RawTensor
from git_theta.updates.base import Held, UpdateContext
from git_theta.updates.chain import load_entry
from git_theta.updates.chain import objects as objects_of
from git_theta.updates.hashing import tensor_hash


def _reusable(
    tensor: RawTensor, store: ObjectStore, name: str, previous: ParamEntry | None, digest: str
) -> bool:
    """`previous` holds exactly these bits, and its objects are here with that content."""
    if (
        previous is None
        or previous.hash != digest
        or previous.dtype != tensor.dtype
        or tuple(previous.shape) != tuple(tensor.shape)
    ):
        return False
    return UpdateContext(store, name, previous).previous_usable() and content_matches(previous, store)


def content_matches(entry: ParamEntry, store: ObjectStore) -> bool:
    """Whether an entry from HEAD or the index may be reused for a tensor with its hash: it
    was recorded as verified before (git_theta.storage.verified), or its objects are decoded and
    checked now (once)."""
    if verified.is_verified(store, entry):
        return True
    try:
        load_entry(entry, store, "", verify=True)
    except ThetaError as exc:
        get_logger(__name__).warning("not reusing a stored entry, storing the tensor again: %s", exc)
        return False
    verified.record(store, [entry])
    return True


def entry_reusable(entry: ParamEntry, store: ObjectStore) -> bool:
    """Whether a stored entry can stand for an unchanged tensor: its objects are all here and
    hold its content."""
    return all(store.has(oid) for oid in objects_of(entry)) and content_matches(entry, store)


def store_tensor(
    tensor: RawTensor,
    store: ObjectStore,
    name: str,
    previous: ParamEntry | None = None,
    update_type: str = "auto",
    side: dict[str, RawTensor] | None = None,
    digest: str | None = None,
    held: Held | None = None,
    seen: dict | None = None,
) -> ParamEntry:
    """Store `tensor` (reusing `previous` when it holds exactly these bits) and return its entry.

    `held`: what the caller still has in memory of the previous values (a training loop saving
    every step), so changes are computed without decoding them;
    `seen`, when given, receives the snapshot value the update decoded (key "snapshot")."""
    digest = digest or tensor_hash(tensor)
    if side is None and _reusable(tensor, store, name, previous, digest):
        return previous
    ctx = UpdateContext.holding(store, name, previous, side, held if previous is not None else None)
    try:
        entry = plugins.updates.get(update_type)().store(tensor, ctx)
        if seen is not None and ctx.snapshot is not None:
            seen["snapshot"] = ctx.snapshot
    finally:
        ctx.release()
    return entry if entry.hash else entry.replace(hash=digest)
