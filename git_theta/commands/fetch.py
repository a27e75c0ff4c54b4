"""`git theta fetch [REMOTE] [REV...]`: download the tensors of revisions ahead of time, in one batch."""

import hashlib
import os
import tempfile

from git_theta.commands.ls_files import ls_files
from git_theta.errors import ThetaError
from git_theta.git import index_stat, repo
from git_theta.metadata import Metadata, is_metadata
from git_theta.storage import transfer
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import objects_of


def split_remote(args: list[str], cwd: str) -> tuple[str | None, list[str]]:
    """A leading argument naming a git remote is the remote; the rest are revisions."""
    remotes = set(repo.run(["remote"], cwd=cwd).decode().split())
    if args and args[0] in remotes:
        return args[0], args[1:]
    return None, args


def objects_at(revs: list[str], top: str, paths: list[str] | None = None) -> dict[str, int]:
    """oid -> size of every object the tracked checkpoints at `revs` need."""
    needed: dict[str, int] = {}
    for rev in revs:
        if not repo.is_commit(rev, top):
            raise ThetaError(f"unknown revision {rev!r}")
        for path in paths or ls_files(top, rev):
            blob = repo.read_blob(f"{rev}:{path}", cwd=top)
            if blob is not None and is_metadata(blob):
                for entry in Metadata.loads(blob, path).params.values():
                    needed.update(objects_of(entry))
    return needed


def fetch(args: list[str], paths: list[str] | None = None, cwd: str | None = None) -> tuple[int, int]:
    """Fetch what the revisions need (default HEAD); returns (objects fetched, bytes fetched)."""
    top = repo.root(cwd)
    remote, revs = split_remote(args, top)
    store = LfsStore.for_cwd(top)
    needed = objects_at(revs or ["HEAD"], top, paths)
    missing = {oid: size for oid, size in needed.items() if not store.has(oid)}
    transfer.fetch(store, missing, top, what=", ".join(revs or ["HEAD"]), remote=remote)
    return len(missing), sum(missing.values())


def checkout_models(
    paths: list[str] | None = None, cwd: str | None = None, pending: bool = False
) -> list[str]:
    """Replace working-tree metadata files (left by GIT_THETA_SKIP_SMUDGE or a deferred
    checkout) with their checkpoints, each written beside it, synced, then renamed over it;
    with `pending`, the paths a deferred checkout noted. The index records each written file's
    stat directly when the metadata was the index's version (no re-read by the clean filter)."""
    from git_theta.filter import deferred
    from git_theta.filter.smudge import prepare
    from git_theta.setup_check import set_up, worktree_metadata

    top = repo.root(cwd)
    set_up(top)  # a clone made without the filter: else git sees the written files as raw changes
    todo = deferred.take(top) if pending else paths or ls_files(top)
    index = repo.git_path("index", top)
    staged = index_oids(top, todo) if todo else {}
    done, recorded = [], []
    try:
        for path in todo:
            full = os.path.join(top, path)
            data = worktree_metadata(full)
            if data is None:
                continue
            write = prepare(data, path, top)  # fetches what is missing before anything is written
            oid = staged.get(path)
            if oid is not None and blob_id(data, len(oid)) != oid:
                oid = None  # not the index's version: git has to look at the file itself
            st = write_atomically(full, write, index if oid else None)
            done.append(path)
            if oid and st is not None and index_stat.patch(index, path, oid, st):
                recorded.append(path)
    except BaseException:
        if pending:  # what is not written yet stays noted for the next try
            for path in todo:
                if path not in done:
                    deferred.record(path, top)
        raise
    finally:
        rest = [p for p in done if p not in recorded]
        if rest:
            record_stat(top, rest)
    return done


def index_oids(top: str, paths: list[str]) -> dict[str, str]:
    """path -> blob id of its stage-0 index entry."""
    out = {}
    for rec in repo.run(["ls-files", "-s", "-z", "--", *paths], cwd=top).split(b"\0"):
        info, _, path = rec.partition(b"\t")
        fields = info.split()
        if len(fields) == 3 and fields[2] == b"0":
            out[path.decode()] = fields[1].decode()
    return out


def blob_id(data: bytes, hex_len: int) -> str:
    """git's blob id of `data` (SHA-1, or SHA-256 in a SHA-256 repository)."""
    algo = hashlib.sha256 if hex_len == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()


def record_stat(top: str, paths: list[str]) -> None:
    """Have the index record the written files' stat without staging anything: each entry gets
    its own blob again, with no stat (so git compares content, through the filter, not sizes),
    then a refresh. `update-index -- PATH` would stage whatever the filter makes of the file."""
    wanted = set(paths)
    entries = []
    for rec in repo.run(["ls-files", "-s", "-z"], cwd=top).split(b"\0"):
        info, _, path = rec.partition(b"\t")
        if path.decode() in wanted and info.endswith(b" 0"):  # stage 0: not a conflict
            entries.append(info + b"\t" + path + b"\0")
    if entries:
        repo.run(["update-index", "-z", "--index-info"], cwd=top, input=b"".join(entries))
    repo.run(["update-index", "-q", "--refresh"], cwd=top, check=False)


def _output(fd: int):
    """The written checkpoint's file object: O_DIRECT where the file system takes it, unless
    GIT_THETA_DIRECT_IO=0. Fresh page-cache pages are what writing costs most on this VM, and the
    fsync then has nothing left to flush (a 498 MB file, dd here: buffered + fsync 1.2-4.5 s,
    O_DIRECT 0.75 s at a tenth of the CPU)."""
    from contextlib import closing

    from git_theta import config
    from git_theta.storage import lfs_store

    if config.get_switch("direct_io") is not False and lfs_store._direct(fd):
        return closing(lfs_store._DirectFile(fd, lfs_store.CHECKOUT_BLOCK, depth=4, in_place=True))
    return os.fdopen(fd, "wb", buffering=1 << 20)


def write_atomically(full: str, write, index: str | None = None) -> os.stat_result | None:
    """Write a file through `write(out)` into a temp file beside it, fsync, rename over it: a
    kill at any point leaves either the old file or the new one, never a part of one.

    With `index` (git's index file), the file gets an mtime before the index's (see
    index_stat.backdate) and its stat after the rename is returned, provided it is still ours
    (that exact mtime: any other write since would have set it to now); else None."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".theta-")
    try:
        with _output(fd) as out:
            write(out)
            out.flush()
            if index is not None:
                index_stat.backdate(out.fileno(), index)
            os.fsync(out.fileno())
            mtime = os.fstat(out.fileno()).st_mtime_ns
        if os.path.exists(full):
            os.chmod(tmp, os.stat(full).st_mode)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, full)
    except BaseException:
        os.unlink(tmp)
        raise
    if index is None:
        return None
    st = os.lstat(full)
    return st if st.st_mtime_ns == mtime else None
