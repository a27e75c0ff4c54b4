"""`git_theta.save`: tensors in memory -> a commit, through the clean filter's storage path.

No checkpoint file is written or read: tensors are hashed, unchanged ones reuse their entries,
changed ones are stored by the update type (auto by default), and the metadata is committed by
plumbing. The working tree is left alone unless `materialize=True` writes the file; a path with
no file on disk is marked skip-worktree (as in a sparse checkout) so `git status` stays clean.
"""

import atexit
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from git_theta import parallel
from git_theta.api.frameworks import flatten, to_raw
from git_theta.api.layouts import format_for_path, layout_for
from git_theta.commands.track import attributes_blob_for
from git_theta.errors import ThetaError
from git_theta.filter.previous import by_content
from git_theta.git import repo
from git_theta.git.commit import commit_paths, current_branch_ref, index_turn, write_blob
from git_theta.logs import get_logger
from git_theta.metadata import Metadata, ParamEntry, is_metadata
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.packs import store_all
from git_theta.tensor import RawTensor
from git_theta.updates import chain, objects_of
from git_theta.updates.save import store_tensor, tensor_hash

log = get_logger(__name__)
_repo_locks: dict[str, threading.Lock] = {}
_savers: dict[tuple[str, str], "_PathSaver"] = {}
_guard = threading.Lock()


def repo_path(path: str, repo_dir: str) -> tuple[str, str]:
    """(repository top, path relative to it with '/'), for a path given relative to `repo_dir`."""
    top = repo.root(repo_dir)
    full = path if os.path.isabs(path) else os.path.join(os.path.abspath(repo_dir), path)
    rel = os.path.relpath(full, top).replace(os.sep, "/")
    if rel.startswith("../"):
        raise ThetaError(f"{path}: outside the repository at {top}")
    return top, rel


def _lock(top: str) -> threading.Lock:
    with _guard:
        return _repo_locks.setdefault(top, threading.Lock())


def _previous(top: str, ref: str, rel: str) -> Metadata | None:
    blob = repo.read_blob(f"{ref}:{rel}", cwd=top) if repo.is_commit(ref, cwd=top) else None
    if blob is None and ref != "HEAD":
        blob = repo.read_blob(f"HEAD:{rel}", cwd=top)  # a new branch builds on what HEAD has
    if blob is None or not is_metadata(blob):
        return None
    try:
        return Metadata.loads(blob, rel)
    except ThetaError:
        return None


def store_state(
    top: str,
    rel: str,
    tree: Mapping,
    tensors: dict,
    ref: str,
    update_type: str,
    memo: dict | None = None,
    spare: dict | None = None,
) -> Metadata:
    """Store the tensors as `rel` would be stored by `git add` (entries reused where unchanged).

    `memo` (kept by a background saver between saves of one path) holds, per parameter, the
    last stored entry with its value and its snapshot's value, so the next change is computed
    from memory instead of decoding what was just written."""
    store = LfsStore.for_cwd(top)
    prev = _previous(top, ref, rel)
    names = list(tensors)
    if prev is not None and list(prev.params) == names:
        fmt_name, layout = prev.format, prev.layout
    else:
        fmt_name = prev.format if prev is not None else format_for_path(rel)
        layout = layout_for(fmt_name, dict(tree), tensors, rel)
    old = prev.params if prev is not None else {}

    digests = dict(
        zip(names, parallel.ordered_map(lambda n: tensor_hash(tensors[n]), names, ahead=len(names)))
    )
    # equal tensors share one entry, and one the previous version stores is reused: the same
    # metadata `git add` of the same tensors writes (see filter.clean)
    groups: dict[tuple, list[str]] = {}
    for n in names:
        groups.setdefault((digests[n], tensors[n].dtype, tuple(tensors[n].shape)), []).append(n)
    reuse = by_content([prev]) if prev is not None else {}

    def one(name: str, target: LfsStore) -> ParamEntry:
        tensor, before = tensors[name], old.get(name)
        key = (digests[name], tensor.dtype, tuple(tensor.shape))
        if key in reuse and (before is None or before.hash != key[0]) and _all_here(store, reuse[key]):
            return reuse[key]
        known, seen = _known(memo, name, before), {}
        entry = store_tensor(
            tensor, target, name, before, update_type, digest=digests[name], known=known, seen=seen
        )
        if memo is not None:
            _remember(memo, name, entry, tensor, before, seen.get("snapshot"), spare)
        return entry

    firsts = {group[0]: group for group in groups.values()}
    entries: dict = {}
    for stored in store_all(list(firsts), lambda n: tensors[n].nbytes, one, store):
        for first, entry in stored.items():
            entries.update((n, entry) for n in firsts[first])
    entries = {n: entries[n] for n in names}
    return Metadata(fmt_name, layout, entries)


def _all_here(store: LfsStore, entry: ParamEntry) -> bool:
    return all(store.has(oid) for oid in objects_of(entry))


def _known(memo: dict | None, name: str, before):
    """(previous value, snapshot value) from the memo when it describes `before` exactly."""
    if memo is None or before is None or name not in memo:
        return None
    entry, value, snap_oid, snap_value = memo[name]
    if entry.oid != before.oid or snap_value is None or chain.snapshot_of(before, name).oid != snap_oid:
        return None
    return value, snap_value


def _remember(memo: dict, name: str, entry, tensor, before, decoded_snapshot, spare=None) -> None:
    """Keep what the next save of this parameter will need: this value and its snapshot's;
    the value it replaces goes to `spare` for the next snapshot copy (unless still needed)."""
    if before is not None and entry is before:
        if spare is not None and (name not in memo or memo[name][1] is not tensor):
            spare[name] = np.frombuffer(tensor.data, dtype=np.uint8)  # an unchanged copy: reuse it
        return  # unchanged: the memo (if any) still holds this value
    old = memo.get(name)
    if spare is not None and old is not None and old[1] is not old[3]:
        spare[name] = np.frombuffer(old[1].data, dtype=np.uint8)
    snap = chain.snapshot_of(entry, name)
    if snap.oid == entry.oid:
        memo[name] = (entry, tensor, snap.oid, tensor)
    elif name in memo and memo[name][2] == snap.oid:
        memo[name] = (entry, tensor, snap.oid, memo[name][3])
    elif (
        decoded_snapshot is not None
        and before is not None
        and chain.snapshot_of(before, name).oid == snap.oid
    ):
        memo[name] = (entry, tensor, snap.oid, decoded_snapshot)
    else:
        memo.pop(name, None)


def commit_state(top: str, rel: str, meta: Metadata, message: str, ref: str, materialize: bool) -> str:
    """Commit `meta` as `rel` on `ref`; keep the working tree as it was unless `materialize`."""
    with _lock(top), index_turn(cwd=top):  # threads here, other processes' git theta add
        blobs = {rel: write_blob(meta.dumps(), top)}
        blobs.update(attributes_blob_for(top, rel, ref))
        on_head = ref == "HEAD" or ref == current_branch_ref(top)
        sha = commit_paths(top, blobs, message, ref)
        if on_head:
            if materialize:
                repo.run(["update-index", "--no-skip-worktree", rel], cwd=top)
                repo.run(["checkout", "--", rel], cwd=top)
            elif not os.path.exists(os.path.join(top, rel)):
                # never written here: like a sparse checkout, git must not report it as deleted
                repo.run(["update-index", "--skip-worktree", rel], cwd=top)
        return sha


def _snapshot(state_dict: Mapping, copy: bool, spare: dict | None = None) -> tuple[Mapping, dict]:
    """Flat raw tensors of the state dict; with `copy`, private copies (into `spare` buffers of
    the right size when there are some: fresh pages cost more than the copy itself)."""
    if not isinstance(state_dict, Mapping):
        raise ThetaError("save() takes a dict of tensors (a state dict), possibly nested")
    flat = flatten(state_dict)
    if not flat:
        raise ThetaError("save(): the state dict is empty")
    out = {}
    for name, value in flat.items():
        raw = to_raw(value, name, copy=False)
        if not copy:
            out[name] = raw
            continue
        buf = spare.pop(name, None) if spare else None
        if buf is None or buf.nbytes != raw.nbytes:
            buf = np.empty(raw.nbytes, dtype=np.uint8)
        np.copyto(buf, np.frombuffer(raw.data, dtype=np.uint8))
        out[name] = RawTensor(raw.dtype, raw.shape, memoryview(buf))
    return state_dict, out


def save(
    state_dict: Mapping,
    path: str,
    message: str | None = None,
    *,
    repo: str = ".",
    update_type: str = "auto",
    branch: str | None = None,
    materialize: bool = False,
    background: bool = False,
) -> "str | SaveHandle":
    """Commit `state_dict` as the checkpoint at `path`; returns the commit sha.

    With `background=True` the tensors are copied at once and a SaveHandle is returned; hashing,
    compression and the commit happen on a worker thread (one save in flight per path: a second
    call waits for the first), and pending saves finish before the interpreter exits.
    """
    from git_theta import plugins

    plugins.updates.get(update_type)  # unknown types fail before any work
    top, rel = repo_path(path, repo)
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    message = message or f"Save {rel}"
    if background:
        return _saver(top, rel).submit(state_dict, message, ref, update_type, materialize)
    tree, tensors = _snapshot(state_dict, copy=False)
    meta = store_state(top, rel, tree, tensors, ref, update_type)
    return commit_state(top, rel, meta, message, ref, materialize)


class SaveHandle:
    """A save running in the background: `result()` waits and returns the commit sha."""

    def __init__(self, future: Future, path: str):
        self._future, self.path = future, path

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> str:
        return self._future.result(timeout)


class _PathSaver:
    """One worker per checkpoint path: saves of a path are committed in call order."""

    def __init__(self, top: str, rel: str):
        self.top, self.rel = top, rel
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"git-theta-save-{rel}")
        self.last: Future | None = None
        self.memo: dict = {}  # per parameter: last entry, its value, its snapshot's oid and value
        self.spare: dict = {}  # buffers no longer needed, reused by the next snapshot copy

    def submit(self, state_dict, message, ref, update_type, materialize) -> SaveHandle:
        if self.last is not None:
            self.last.result()  # at most one in flight: wait (and surface its error) first
        tree, tensors = _snapshot(state_dict, copy=True, spare=self.spare)

        def work():
            meta = store_state(self.top, self.rel, tree, tensors, ref, update_type, self.memo, self.spare)
            return commit_state(self.top, self.rel, meta, message, ref, materialize)

        self.last = self.pool.submit(work)
        return SaveHandle(self.last, self.rel)

    def wait(self) -> None:
        if self.last is not None:
            try:
                self.last.result()
            except Exception as exc:  # reported, not raised, at interpreter exit
                log.error("background save of %s failed: %s", self.rel, exc)


def _saver(top: str, rel: str) -> _PathSaver:
    with _guard:
        return _savers.setdefault((top, rel), _PathSaver(top, rel))


def wait_for_saves() -> None:
    """Finish every pending background save (also run at normal interpreter exit)."""
    for saver in list(_savers.values()):
        saver.wait()


# Run before concurrent.futures refuses new work at shutdown (a save uses worker pools itself):
# threading's exit hooks run last-registered first, and before atexit's.
_register = getattr(threading, "_register_atexit", atexit.register)
_register(wait_for_saves)
