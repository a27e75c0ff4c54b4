"""Update chains: an entry of a change type embeds the entry it builds on, down to a snapshot.

A parameter is rebuilt from its metadata alone: the chain is walked down to its snapshot (an
entry that needs nothing earlier), every step's object is read and decoded in parallel, and the
changes are applied bottom-up. Chains are bounded by GIT_THETA_MAX_CHAIN (default 8) stored steps.
"""

from git_theta import config, plugins
from git_theta.errors import ThetaError
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor

_HARD_LIMIT = 64  # a chain longer than this was not written by git-theta: refuse it


def max_chain() -> int:
    """Most stored steps (snapshot included) that rebuilding one parameter may read."""
    return config.get_int("max_chain")


def depth(entry: ParamEntry | None) -> int:
    """Changes on top of the snapshot (0 for a snapshot)."""
    return len(chain_of(entry)) - 1 if entry is not None else 0


def base_of(entry: ParamEntry, name: str = "") -> ParamEntry | None:
    """The entry `entry` builds on, or None for a snapshot."""
    base = entry.extra.get("base")
    if base is None:
        return None
    if not isinstance(base, dict):
        raise ThetaError(f"metadata for parameter {name!r} has a malformed update base")
    return ParamEntry.from_json(base, name)


def chain_of(entry: ParamEntry, name: str = "") -> list[ParamEntry]:
    """[entry, its base, ..., the snapshot]."""
    chain = [entry]
    while (base := base_of(chain[-1], name)) is not None:
        chain.append(base)
        if len(chain) > _HARD_LIMIT:
            raise ThetaError(f"update chain of parameter {name!r} is longer than {_HARD_LIMIT} steps")
    return chain


def snapshot_of(entry: ParamEntry, name: str = "") -> ParamEntry:
    """The bottom of `entry`'s chain: the entry that needs nothing earlier."""
    return chain_of(entry, name)[-1]


def objects(entry: ParamEntry, name: str = "") -> dict[str, int]:
    """LFS objects (oid -> size) that rebuilding `entry` reads.

    A built-in update type's own objects are its entry's (Update.own_objects, which none of
    them overrides: tests/updates check that), so listing them imports no update module, and
    with it no codec or numpy: the pre-push hook of GPT-2-small spent ~0.1 s of its 0.35 s
    importing those."""
    found: dict[str, int] = {}
    for step in chain_of(entry, name):
        if plugins.updates.is_builtin(step.update_type):
            found[step.oid] = step.size
        else:
            found.update(plugins.updates.get(step.update_type)().own_objects(step))
    return found


def rebuild(
    entry: ParamEntry, store: LfsStore, name: str, keep_snapshot: bool = False
) -> RawTensor | tuple[RawTensor, RawTensor]:
    """The tensor `entry` describes; with `keep_snapshot`, also its chain's snapshot value."""
    chain = chain_of(entry, name)
    kinds = [plugins.updates.get(step.update_type)() for step in chain]

    def read(i: int):
        if i == len(chain) - 1:
            return kinds[i].load(chain[i], store, name)
        return kinds[i].read_parts(chain[i], store, name)

    from git_theta import parallel  # on use: typing, which the pre-push hook never needs

    steps = list(parallel.ordered_map(read, range(len(chain)))) if len(chain) > 1 else [read(0)]
    value = snapshot = steps[-1]
    for i in range(len(chain) - 2, -1, -1):
        value = kinds[i].apply(value, steps[i], chain[i], name)
    return (value, snapshot) if keep_snapshot else value


def load_entry(entry: ParamEntry, store: LfsStore, name: str, verify: bool | None = None) -> RawTensor:
    """The tensor a metadata entry describes, whatever its update type; checked against the
    entry's content hash when `verify` is True, or by default as GIT_THETA_VERIFY says (an entry
    this repository stored or verified before is trusted, see storage.verified).

    With the content check the objects are read without their own hash (it would hash every
    byte a second time); when the check fails they are read again, each checked against its
    oid, so a corrupt object is named as such rather than as a metadata mismatch."""
    from git_theta.storage import verified

    how = verified.mode() if verify is None else (verified.ALWAYS if verify else verified.OFF)
    if how == verified.OFF:
        return rebuild(entry, store, name)
    if how == verified.ONCE and store.check_objects and verified.is_verified(store, entry):
        return rebuild(entry, store.content_checked(), name)
    try:
        tensor = rebuild(entry, store.content_checked() if store.check_objects else store, name)
        verified.check(tensor, entry, name)
        return tensor
    except ThetaError:
        if not store.check_objects:
            raise
    tensor = rebuild(entry, store, name)  # raises for a corrupt object; else the content check does
    verified.check(tensor, entry, name)
    return tensor
