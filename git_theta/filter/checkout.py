"""Writing checkpoints over the metadata files a checkout left in the working tree (`git theta
checkout-models`, the API, the filter's direct checkout): each written beside its target, synced,
then renamed over it, its stat recorded in the index so git does not read it again."""

import os
import tempfile

from git_theta.filter import deferred
from git_theta.filter.smudge import prepare
from git_theta.git import index_stat, repo
from git_theta.git.tracking import tracked_files
from git_theta.setup_check import set_up, worktree_metadata


def checkout_models(
    paths: list[str] | None = None, cwd: str | None = None, pending: bool = False
) -> list[str]:
    """Replace working-tree metadata files (left by GIT_THETA_SKIP_SMUDGE or a deferred
    checkout) with their checkpoints, each written beside it, synced, then renamed over it;
    with `pending`, the paths a deferred checkout noted. The index records each written file's
    stat directly when the metadata was the index's version (no re-read by the clean filter)."""
    top = repo.root(cwd)
    set_up(top)  # a clone made without the filter: else git sees the written files as raw changes
    todo = deferred.take(top) if pending else paths or tracked_files(top)
    index = repo.git_path("index", top)
    staged = index_stat.index_oids(top, todo) if todo else {}
    done, recorded = [], []
    try:
        for path in todo:
            full = os.path.join(top, path)
            data = worktree_metadata(full)
            if data is None:
                continue
            write = prepare(data, path, top)  # fetches what is missing before anything is written
            oid = staged.get(path)
            if oid is not None and index_stat.blob_id(data, len(oid)) != oid:
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
            index_stat.record_stat(top, rest)
    return done


def open_output(fd: int):
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
        with open_output(fd) as out:
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
