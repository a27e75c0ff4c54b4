"""`git_theta.save`: tensors in memory -> a commit, through the clean filter's storage path.

No checkpoint file is written or read: tensors are hashed, unchanged ones reuse their entries,
changed ones are stored by the update type (auto by default), and the metadata is committed by
plumbing. The working tree is left alone unless `materialize=True` writes the file; a path with
no file on disk is marked skip-worktree (as in a sparse checkout) so `git status` stays clean.
"""

import atexit
import os
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from git_theta import config, memory, parallel, plugins
from git_theta.api.frameworks import device_copy, flatten, on_accelerator, to_raw
from git_theta.api.layouts import format_for_path, layout_fits, layout_for
from git_theta.api.paths import repo_path
from git_theta.errors import ThetaError
from git_theta.filter.checkout import checkout_models
from git_theta.filter.previous import by_content
from git_theta.formats.detect import by_name
from git_theta.git import repo
from git_theta.git.commit import commit_paths, current_branch_ref, index_turn, write_blob
from git_theta.git.tracking import attributes_blob_for
from git_theta.logs import get_logger
from git_theta.metadata import Metadata, ParamEntry, is_metadata
from git_theta.records import Record
from git_theta.storage import objects_lock
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.objects import ObjectStore
from git_theta.storage.packs import SMALL_BYTES, store_all
from git_theta.tensor import RawTensor, TensorSpec
from git_theta.updates import chain
from git_theta.updates.auto import AutoUpdate
from git_theta.updates.base import Held
from git_theta.updates.delta import DeltaUpdate
from git_theta.updates.hashing import tensor_hash
from git_theta.updates.sparse import sample_windows
from git_theta.updates.storing import entry_reusable, store_tensor

log = get_logger(__name__)
_repo_locks: dict[str, threading.Lock] = {}
_savers: dict[tuple[str, str], "_PathSaver"] = {}
_guard = threading.Lock()
_BACKGROUND_NICE = 10  # how much lower background saves run than the thread that calls save()
_PIECE = 16 << 20  # snapshot copies are split into pieces of this size across threads


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
    store = LfsStore.for_cwd(top, bulk=memo is not None)  # background saves: see LfsStore
    prev = _previous(top, ref, rel)
    names = list(tensors)
    if prev is not None and list(prev.params) == names and layout_fits(prev.format, prev.layout, tensors):
        fmt_name, layout = prev.format, prev.layout
    else:
        fmt_name = prev.format if prev is not None else format_for_path(rel)
        layout = layout_for(fmt_name, dict(tree), tensors, rel)
    specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]
    by_name(fmt_name).check_specs(layout, specs, rel)  # what could not be checked out is refused now
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

    def one(name: str, target: ObjectStore) -> ParamEntry:
        tensor, before = tensors[name], old.get(name)
        key = (digests[name], tensor.dtype, tuple(tensor.shape))
        if key in reuse and (before is None or before.hash != key[0]) and entry_reusable(reuse[key], store):
            return reuse[key]
        held, seen = _held(memo, name, before), {}
        entry = store_tensor(
            tensor, target, name, before, update_type, digest=digests[name], held=held, seen=seen
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
    from git_theta.storage import verified

    verified.record(store, list(entries.values()))
    return Metadata(fmt_name, layout, entries)


class _Memo(Record):
    """What a background saver keeps of a parameter between saves: the last stored entry, the
    oid of its chain's snapshot, and the values it holds of them (see _keep)."""

    _COMPARED = ("entry", "snapshot_oid", "held")
    __slots__ = _COMPARED

    def __init__(self, entry: ParamEntry, snapshot_oid: str, held: Held):
        self.entry, self.snapshot_oid, self.held = entry, snapshot_oid, held


def _held(memo: dict | None, name: str, before) -> Held | None:
    """What the memo holds of the previous values, when it describes `before` exactly."""
    if memo is None or before is None or name not in memo:
        return None
    kept = memo[name]
    if (
        kept.entry.oid != before.oid
        or kept.held.snapshot is None
        or chain.snapshot_of(before, name).oid != kept.snapshot_oid
    ):
        return None
    return kept.held


def _remember(memo: dict, name: str, entry, tensor, before, decoded_snapshot, spare=None) -> None:
    """Keep what the next save of this parameter will need (see _keep); a value no longer
    needed goes to `spare` for a later snapshot copy."""
    if before is not None and entry is before:
        if spare is not None and (name not in memo or memo[name].held.value is not tensor):
            _give(spare, name, tensor)  # an unchanged copy: reuse it
        return  # unchanged: the memo (if any) still holds what describes this value
    old = memo.pop(name, None)
    snap = chain.snapshot_of(entry, name)
    if snap.oid == entry.oid:
        snap_value = tensor
    elif old is not None and old.snapshot_oid == snap.oid:
        snap_value = old.held.snapshot
    elif (
        decoded_snapshot is not None
        and before is not None
        and chain.snapshot_of(before, name).oid == snap.oid
    ):
        snap_value = decoded_snapshot
    else:
        snap_value = None
    if (
        spare is not None
        and old is not None
        and old.held.value is not None
        and old.held.value is not old.held.snapshot
    ):
        _give(spare, name, old.held.value)
    if snap_value is None:
        if spare is not None:
            _give(spare, name, tensor)
        return
    _keep(memo, name, entry, tensor, snap.oid, snap_value, spare)


def _keep(memo: dict, name: str, entry, value, snap_oid: str, snap_value, spare: dict | None) -> None:
    """Memo for `name`: its entry, snapshot value and the previous value - or, for a large
    tensor that is not its own snapshot, only sampled windows of it (enough to tell a change of
    every weight, which bit deltas against the snapshot store): its buffer is then free for the
    next copy, and a loop holds the snapshot plus the copies in flight, not one more."""
    windows = None
    if value is not snap_value and value.nbytes > SMALL_BYTES:
        windows = sample_windows(value)
        if windows is not None:
            if spare is not None:
                _give(spare, name, value)
            value = None
    memo[name] = _Memo(entry, snap_oid, Held(value, snap_value, windows))


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
                checkout_models([rel], cwd=top)  # a clone made without the filter got the metadata
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
    if not copy:
        return state_dict, {name: to_raw(value, name) for name, value in flat.items()}
    # host bytes once per tensor (an accelerator's tensor is copied straight into its buffer)
    raws = {name: None if on_accelerator(value) else to_raw(value, name) for name, value in flat.items()}
    sizes = {
        name: raw.nbytes if raw is not None else flat[name].numel() * flat[name].element_size()
        for name, raw in raws.items()
    }
    bufs = {}
    for name, size in sizes.items():
        buf = _take(spare, name) if spare else None
        if buf is not None and buf.nbytes == size:
            bufs[name] = buf
    fresh = [n for n in sizes if n not in bufs]
    bufs.update(zip(fresh, memory.carve([sizes[n] for n in fresh])))
    out, pieces = {}, []
    for name, raw in raws.items():
        dst = bufs[name]
        if raw is None:
            out[name] = device_copy(flat[name], dst)
            continue
        src = np.frombuffer(raw.data, dtype=np.uint8)
        pieces += [(dst[i : i + _PIECE], src[i : i + _PIECE]) for i in range(0, len(src), _PIECE)]
        out[name] = RawTensor(raw.dtype, raw.shape, memoryview(dst))
    # on all cores: fresh pages fault in parallel, and a copy is memory-bound anyway
    for _ in parallel.ordered_map(lambda pair: np.copyto(*pair), pieces, ahead=len(pieces) + 1):
        pass
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
    plugins.updates.get(update_type)  # unknown types fail before any work
    top, rel = repo_path(path, repo)
    ref = f"refs/heads/{branch}" if branch else "HEAD"
    message = message or f"Save {rel}"
    if background:
        return _saver(top, rel).submit(state_dict, message, ref, update_type, materialize)
    tree, tensors = _snapshot(state_dict, copy=False)
    with objects_lock.writing(top):  # prune spares the objects until the commit refers to them
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
    """One worker per checkpoint path: saves of a path run one at a time, committed in call order.

    A call copies the tensors and returns; it blocks only while GIT_THETA_SAVE_QUEUE saves
    (default 1) already wait behind the running one, so a slow save (the first, which has to
    read the previous version) does not stall the loop, and each waiting save holds one copy."""

    def __init__(self, top: str, rel: str):
        self.top, self.rel = top, rel
        self.pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"git-theta-save-{rel}", initializer=_yield_to_caller
        )
        self.futures: deque[Future] = deque()
        self.memo: dict[str, _Memo] = {}  # per parameter: what the next save builds on (see _keep)
        self.spare: dict = {}  # per parameter, buffers no longer needed: the next copies reuse them

    def submit(self, state_dict, message, ref, update_type, materialize) -> SaveHandle:
        queue = config.get_int("save_queue")
        while self.futures and (self.futures[0].done() or len(self.futures) > queue):
            self.futures.popleft().result()  # wait (and surface an earlier save's error) first
        starting = not self.futures and not self.memo
        if starting:  # read the version this save builds on, from now on (at lower priority)
            self.pool.submit(_prime, self.top, self.rel, ref, update_type, self.memo, self.spare)
        tree, tensors = _snapshot(state_dict, copy=True, spare=self.spare)  # on all cores
        if starting:  # while the caller works: buffers for the next copy (it cannot reuse this one's)
            sizes = {name: t.nbytes for name, t in tensors.items()}
            threading.Thread(target=_ready_buffers, args=(sizes, self.spare), daemon=True).start()

        def work():
            with objects_lock.writing(self.top):
                meta = store_state(self.top, self.rel, tree, tensors, ref, update_type, self.memo, self.spare)
                return commit_state(self.top, self.rel, meta, message, ref, materialize)

        self.futures.append(self.pool.submit(work))
        return SaveHandle(self.futures[-1], self.rel)

    def wait(self) -> None:
        while self.futures:
            try:
                self.futures.popleft().result()
            except Exception as exc:  # reported, not raised, at interpreter exit
                log.error("background save of %s failed: %s", self.rel, exc)


def _yield_to_caller() -> None:
    """Lower this thread's CPU priority (threads it starts inherit it): a background save then
    takes the cores the training loop leaves idle instead of slowing its steps."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _BACKGROUND_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: the same priority as the caller
        pass


def _ready_buffers(sizes: dict[str, int], spare: dict) -> None:
    """Spare buffers of these sizes for the next copy, their pages faulted in on an idle thread
    (later copies reuse the buffers of saves that have finished: see _keep)."""
    _yield_to_caller()
    try:
        bufs = dict(zip(sizes, memory.carve(list(sizes.values()))))

        def ready(name: str) -> None:
            memory.touch([bufs[name]])
            _give(spare, name, bufs[name])  # at once: a copy that comes early takes what is ready

        for _ in parallel.ordered_map(ready, list(bufs), ahead=len(bufs) + 1):
            pass
    except (RuntimeError, MemoryError):  # the interpreter is exiting, or no memory to spare
        return


def _give(spare: dict, name: str, tensor) -> None:
    """Keep a buffer no longer needed for a later copy of `name` (called from any thread)."""
    spare.setdefault(name, []).append(
        np.frombuffer(tensor.data if isinstance(tensor, RawTensor) else tensor, dtype=np.uint8)
    )


def _take(spare: dict, name: str) -> np.ndarray | None:
    try:
        return spare.get(name, []).pop()
    except IndexError:
        return None


def _prime(top: str, rel: str, ref: str, update_type: str, memo: dict, spare: dict) -> None:
    """Fill an empty memo with the values of the version a first save builds on (what storing
    changes reads anyway), so that reading overlaps the caller's copy; a failure only logs."""
    try:
        if issubclass(plugins.updates.get(update_type), (AutoUpdate, DeltaUpdate)):
            _fill_memo(top, rel, ref, memo, spare)
    except Exception as exc:  # the save itself reads what it needs and reports what fails
        log.debug("background save of %s not primed: %s", rel, exc)


def _fill_memo(top: str, rel: str, ref: str, memo: dict, spare: dict) -> None:
    prev = _previous(top, ref, rel)
    if prev is None:
        return
    store = LfsStore.for_cwd(top)

    def one(item):
        name, entry = item
        try:
            return (name, entry, *chain.rebuild(entry, store, name, keep_snapshot=True))
        except ThetaError:
            return None

    for done in parallel.ordered_map(one, list(prev.params.items())):
        if done is not None:
            name, entry, value, snap = done
            _keep(memo, name, entry, value, chain.snapshot_of(entry, name).oid, snap, spare)


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
