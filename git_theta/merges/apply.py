"""Run the chosen strategies on conflicting parameters and store the merged tensors."""

import numpy as np

from git_theta.merges.base import Sides
from git_theta.merges.plan import Choice, Conflict
from git_theta.metadata import Metadata, ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry
from git_theta.updates.hashing import tensor_hash
from git_theta.updates.storing import store_tensor


def load_array(entry: ParamEntry | None, store: LfsStore, name: str) -> np.ndarray | None:
    if entry is None:
        return None
    tensor = load_entry(entry, store, name)
    return tensor.numpy()


def sides_of(conflict: Conflict, store: LfsStore) -> Sides:
    return Sides(
        conflict.name,
        load_array(conflict.ancestor, store, conflict.name),
        load_array(conflict.ours, store, conflict.name),
        load_array(conflict.theirs, store, conflict.name),
    )


def resolve(conflict: Conflict, choice: Choice, store: LfsStore) -> ParamEntry | None:
    """The merged parameter's entry (reused when the result equals a side), or None if deleted."""
    result = choice.strategy.merge(sides_of(conflict, store), **choice.args)
    if result is None:
        return None
    dtype = (conflict.ours or conflict.theirs or conflict.ancestor).dtype
    tensor = RawTensor.from_numpy(np.ascontiguousarray(result), dtype)
    digest = tensor_hash(tensor)
    for entry in (conflict.ours, conflict.theirs, conflict.ancestor):
        if (
            entry is not None
            and entry.hash == digest
            and entry.dtype == dtype
            and tuple(entry.shape) == tensor.shape
        ):
            return entry
    return store_tensor(tensor, store, conflict.name, conflict.ours, digest=digest)


def objects_needed(conflicts: list[Conflict]) -> Metadata:
    """A metadata view of every side of the conflicts, to fetch their objects in one batch."""
    params = {}
    for c in conflicts:
        for side in ("ancestor", "ours", "theirs"):
            entry = getattr(c, side)
            if entry is not None:
                params[f"{side}/{c.name}"] = entry
    return Metadata("pytorch", {}, params)
