"""Clean: a checkpoint's bytes -> metadata; new tensors land in the LFS store.

Every tensor is hashed; one whose (hash, dtype, shape) matches an entry at HEAD or in the index
reuses that entry, so an unchanged parameter costs one hash and nothing is rewritten.
"""

from collections.abc import Callable

import numpy as np

from git_theta import config, parallel, plugins
from git_theta.errors import ThetaError
from git_theta.filter.previous import by_content, previous_metadata, tracked_content
from git_theta.formats.detect import detect
from git_theta.formats.siblings import beside
from git_theta.logs import Progress, get_logger
from git_theta.metadata import Metadata, ParamEntry, is_metadata
from git_theta.storage import verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.objects import ObjectStore
from git_theta.storage.packs import store_all
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry, objects_of, policy
from git_theta.updates.hashing import tensor_hash
from git_theta.updates.side import load_side_updates
from git_theta.updates.storing import entry_reusable, store_tensor

log = get_logger(__name__)


def _within_tolerance(new: RawTensor, old: RawTensor, atol: float, rtol: float) -> bool:
    a, b = new.numpy(), old.numpy()
    if a.dtype.kind in "fcV" or new.dtype.startswith(("bfloat", "float8")):
        a64, b64 = a.astype(np.complex128 if a.dtype.kind == "c" else np.float64), b.astype(
            np.complex128 if b.dtype.kind == "c" else np.float64
        )
        return bool(np.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(a, b))


def clean(
    data, path: str, cwd: str | None = None, release: Callable[[memoryview], None] | None = None
) -> bytes:
    """Store the checkpoint `data` (bytes-like) tracked at `path`; return its metadata file.

    `release(tensor.data)`, when given, is called once a tensor's bytes are no longer needed
    (a spilled spool drops their pages), so memory stays near the tensors in flight."""
    done = release or (lambda _data: None)
    view = memoryview(data).cast("B")
    if len(view) == 0 or is_metadata(view):
        return bytes(view)  # empty files and metadata pass through unchanged
    fmt = detect(path, bytes(view[:64]), beside(path, cwd))
    checkpoint = fmt.read(view, path)
    store = LfsStore.for_cwd(cwd)
    previous = previous_metadata(path, cwd)
    head = previous[0].params if previous else {}
    update = plugins.updates.get(config.get("update_type") or "auto")()
    tensors = dict(checkpoint.tensors)
    side, kind_of = _side_updates(tensors, update, head, store, path)
    names = list(tensors)
    hashes = _hash_all(tensors, done)
    entries, todo = _reuse_known(tensors, hashes, _known_entries(previous, cwd), store)
    atol, rtol = config.get_float("parameter_atol"), config.get_float("parameter_rtol")
    if (atol is not None or rtol is not None) and todo:
        _apply_tolerance(todo, entries, head, tensors, store, atol or 0.0, rtol or 0.0)
    _store_changed(todo, entries, tensors, side, kind_of, head, store, done, path)
    if todo:  # a new version: an unchanged file keeps the entries it was staged with
        exact = {n for n, digest in hashes.items() if entries[n].hash == digest}
        _bound_version(entries, exact, tensors, store, len(view), done, path)
    ordered = {name: entries[name] for name in names}
    verified.record(store, list(ordered.values()))  # stored here, or reused after a check
    log.info("clean %s: %d parameters, %d stored", path, len(names), len(todo))
    return Metadata(fmt.name, checkpoint.layout, ordered).dumps_unchanged(previous)


def _side_updates(
    tensors: dict[str, RawTensor], update, head: dict[str, ParamEntry], store: LfsStore, path: str
) -> tuple[dict[str, dict], Callable[[str], str]]:
    """Apply `git theta add --update-data` side files to `tensors` (in place); return the side
    parts per parameter and the update type each parameter is stored with."""
    side: dict[str, dict] = {}
    side_path = config.get("update_data_path")
    if side_path and not update.takes_side_data:
        log.warning(
            "%s: GIT_THETA_UPDATE_DATA_PATH is ignored: update type %r takes no side data", path, update.name
        )
    elif side_path:
        for name, (new, parts) in load_side_updates(side_path, update, tensors, head, store).items():
            tensors[name] = new
            side[name] = parts
        log.info("%s: %d parameters updated from %s (%s)", path, len(side), side_path, update.name)
    # a side file's parameters use its update; every other one is stored as a plain add would
    return side, lambda name: update.name if (name in side or not side_path) else "auto"


def _hash_all(tensors: dict[str, RawTensor], done: Callable) -> dict[str, str]:
    """Each tensor's content hash, in parallel; `done` releases its bytes once hashed."""

    def hash_one(tensor: RawTensor) -> str:
        digest = tensor_hash(tensor)
        done(tensor.data)
        return digest

    return dict(zip(tensors, parallel.ordered_map(hash_one, list(tensors.values()), ahead=len(tensors))))


def _known_entries(previous: list[Metadata], cwd: str | None) -> dict[tuple, ParamEntry]:
    """Entries by content: this path's own first, the index's before HEAD's, so cleaning what
    was just staged gives back exactly the staged metadata (git status stays clean)."""
    return {**tracked_content(cwd), **by_content(previous[::-1])}


def _reuse_known(
    tensors: dict[str, RawTensor], hashes: dict[str, str], known: dict[tuple, ParamEntry], store: LfsStore
) -> tuple[dict[str, ParamEntry], dict[tuple, list[str]]]:
    """(entries reused for tensors stored before, the rest grouped by content: one store each)."""

    entries: dict[str, ParamEntry] = {}
    todo: dict[tuple, list[str]] = {}
    for name, tensor in tensors.items():
        key = (hashes[name], tensor.dtype, tuple(tensor.shape))
        if key in known and entry_reusable(known[key], store):
            entries[name] = known[key]
        else:
            todo.setdefault(key, []).append(name)
    return entries, todo


def _store_changed(todo, entries, tensors, side, kind_of, head, store: ObjectStore, done, path: str) -> None:
    """Store one tensor per content in `todo` (packing small ones), filling `entries` for every
    parameter of its group."""
    progress = Progress(f"storing {path}", len(todo))
    by_first = {group[0]: (key, group) for key, group in todo.items()}

    def store_one(name: str, target: ObjectStore) -> ParamEntry:
        key = by_first[name][0]
        entry = store_tensor(
            tensors[name], target, name, head.get(name), kind_of(name), side.get(name), digest=key[0]
        )
        done(tensors[name].data)
        progress.advance()
        return entry

    try:
        for stored in store_all(list(by_first), lambda n: tensors[n].nbytes, store_one, store):
            for first, entry in stored.items():
                for name in by_first[first][1]:
                    entries[name] = entry
    finally:
        progress.close()


def _bound_version(entries, exact: set, tensors, store, file_bytes: int, done, path: str) -> None:
    """Under the bounded storage policy, keep what a checkout of this version fetches within the
    file's size: parameters reading packs left mostly dead by later changes are stored afresh
    (updates.policy.packs_to_detach). Each parameter's own chain is bounded when it is stored;
    only parameters stored exactly as in the file (`exact`: not kept by a tolerance) move."""
    if policy.current() != policy.BOUNDED:
        return
    packs = policy.packs_to_detach(entries, file_bytes)
    if not packs:
        return
    groups: dict[tuple, list[str]] = {}  # one object per content, as clean() stores them
    for n, e in entries.items():
        if n in exact and packs & set(objects_of(e, n)):
            groups.setdefault((e.hash, e.dtype, tuple(e.shape)), []).append(n)
    log.info("%s: %d parameters stored afresh so a checkout fetches at most the file", path, len(groups))
    firsts = {group[0]: group for group in groups.values()}

    def store_fresh(name: str, target: ObjectStore) -> ParamEntry:
        entry = store_tensor(tensors[name], target, name, None, "dense", digest=entries[name].hash)
        done(tensors[name].data)
        return entry

    for stored in store_all(list(firsts), lambda n: tensors[n].nbytes, store_fresh, store):
        for first, entry in stored.items():
            for name in firsts[first]:
                entries[name] = entry


def _apply_tolerance(todo, entries, head, tensors, store, atol: float, rtol: float) -> None:
    """Lossy opt-in: a changed tensor within tolerance of HEAD's keeps HEAD's stored value."""
    for key in list(todo):
        group = todo[key]
        kept = []
        for name in group:
            old = head.get(name)
            if old is None or old.dtype != key[1] or tuple(old.shape) != key[2]:
                kept.append(name)
                continue
            try:
                old_tensor = load_entry(old, store, name)
            except ThetaError:
                kept.append(name)
                continue
            if _within_tolerance(tensors[name], old_tensor, atol, rtol):
                entries[name] = old
            else:
                kept.append(name)
        if kept:
            todo[key] = kept
        else:
            del todo[key]
