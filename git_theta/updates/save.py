"""Storing one tensor through an update type: the single path used by clean, merges and the API."""

import hashlib

from git_theta import plugins
from git_theta.metadata import ParamEntry
from git_theta.storage import verified
from git_theta.storage.objects import ObjectStore
from git_theta.tensor import RawTensor
from git_theta.updates.base import UpdateContext


def tensor_hash(tensor: RawTensor) -> str:
    """sha256 of the tensor's raw bytes: the identity an entry records."""
    return hashlib.sha256(tensor.data).hexdigest()


def store_tensor(
    tensor: RawTensor,
    store: ObjectStore,
    name: str,
    previous: ParamEntry | None = None,
    update_type: str = "auto",
    side: dict[str, RawTensor] | None = None,
    digest: str | None = None,
    known: tuple | None = None,
    seen: dict | None = None,
) -> ParamEntry:
    """Store `tensor` (reusing `previous` when it holds exactly these bits) and return its entry.

    `known` = (previous value or None, value of its chain's snapshot, sampled windows of the
    previous value or None) when the caller still has them in memory (a training loop saving
    every step): changes are computed without decoding them;
    `seen`, when given, receives the snapshot value the update decoded (key "snapshot")."""
    digest = digest or tensor_hash(tensor)
    if (
        previous is not None
        and side is None
        and previous.hash == digest
        and previous.dtype == tensor.dtype
        and tuple(previous.shape) == tuple(tensor.shape)
    ):
        ctx = UpdateContext(store, name, previous)
        if ctx.previous_usable() and verified.content_matches(previous, store):
            return previous
    ctx = UpdateContext(store, name, previous, side)
    if known is not None and previous is not None:
        ctx._values, ctx._windows = known[:2], known[2]
    try:
        entry = plugins.updates.get(update_type)().store(tensor, ctx)
        if seen is not None and ctx._values is not None and ctx._values[1] is not None:
            seen["snapshot"] = ctx._values[1]
    finally:
        ctx.release()
    return entry if entry.hash else entry.replace(hash=digest)
