"""Storing one tensor through an update type: the single path used by clean, merges and the API."""

from git_theta import plugins
from git_theta.metadata import ParamEntry
from git_theta.storage import verified
from git_theta.storage.objects import ObjectStore
from git_theta.tensor import RawTensor
from git_theta.updates.base import Held, UpdateContext
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
    return UpdateContext(store, name, previous).previous_usable() and verified.content_matches(
        previous, store
    )


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
