"""`git theta fetch [REMOTE] [REV...]`: download the tensors of revisions ahead of time, in one batch."""

import os
import tempfile

from git_theta.commands.ls_files import ls_files
from git_theta.errors import ThetaError
from git_theta.git import repo
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
    """Replace working-tree metadata files (left by GIT_THETA_SKIP_SMUDGE or a low-memory
    checkout) with their checkpoints, each written beside it, synced, then renamed over it;
    with `pending`, the paths a low-memory checkout noted."""
    from git_theta.filter import deferred
    from git_theta.filter.smudge import prepare
    from git_theta.setup_check import set_up, worktree_metadata

    top = repo.root(cwd)
    set_up(top)  # a clone made without the filter: else git sees the written files as raw changes
    todo = deferred.take(top) if pending else paths or ls_files(top)
    done = []
    try:
        for path in todo:
            full = os.path.join(top, path)
            data = worktree_metadata(full)
            if data is None:
                continue
            write = prepare(data, path, top)  # fetches what is missing before anything is written
            write_atomically(full, write)
            done.append(path)
    except BaseException:
        if pending:  # what is not written yet stays noted for the next try
            for path in todo:
                if path not in done:
                    deferred.record(path, top)
        raise
    finally:
        if done:
            record_stat(top, done)
    return done


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


def write_atomically(full: str, write) -> None:
    """Write a file through `write(out)` into a temp file beside it, fsync, rename over it: a
    kill at any point leaves either the old file or the new one, never a part of one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".theta-")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        if os.path.exists(full):
            os.chmod(tmp, os.stat(full).st_mode)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, full)
    except BaseException:
        os.unlink(tmp)
        raise
