"""`git theta prune [--force]`: delete local LFS objects nothing worth keeping refers to.

Kept, as `git gc` keeps git's own objects: every object referenced by what any ref (branches,
tags, remote-tracking refs, the stash and its entries), the HEAD and the index of every worktree,
and every reflog entry reach (unless --no-reflog), plus objects of plain Git LFS pointer files.
Spared: objects written after the expiry date (--expire / theta.pruneExpire, default git's
gc.pruneExpire or 2.weeks.ago), and nothing is decided while a command that writes objects runs
(storage.objects_lock). So unpushed commits, a `git reset --hard` undone through the reflog, a
model staged in another worktree and a running `git add` keep their tensors; what goes is what
only long-gone branches, abandoned merges and never-committed `git add`s referred to. Without
--force it only reports.
"""

import os
import time
from dataclasses import dataclass

from git_theta import config
from git_theta.errors import ThetaError
from git_theta.filter import replaced
from git_theta.git import history, repo
from git_theta.storage import objects_lock, verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import objects_of


@dataclass
class PruneReport:
    delete: dict[str, int]  # oid -> bytes
    keep: int
    keep_bytes: int
    stale_temp_files: int = 0
    recent: int = 0  # unreferenced objects spared because they are younger than the expiry
    recent_bytes: int = 0
    expire: str = ""  # the expiry date as given
    replaced_bytes: int = 0  # checkpoints git replaced or the user deleted, still linked (filter.replaced)


STALE_AFTER_S = 3600


def stale_temp_files(store: LfsStore, top: str) -> list[str]:
    """Temporary files a killed git-theta left behind (older than an hour)."""
    now = time.time()
    found = []
    for folder, prefix in (
        (store.tmp_dir, "theta-"),
        (os.path.join(repo.common_dir(top), "theta", "tmp"), "theta-spool-"),
    ):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                if name.startswith(prefix) and now - os.path.getmtime(path) > STALE_AFTER_S:
                    found.append(path)
    return found


def referenced(top: str, reflog: bool = True) -> set[str]:
    """Every oid that refs, reflogs (with `reflog`), stash entries, and the HEAD and index of
    every worktree refer to (git's own `--all --reflog --indexed-objects`, which `git gc` uses)."""
    return _reachable(top, reflog)[0]


def _reachable(top: str, reflog: bool) -> tuple[set[str], set[str]]:
    """(oids, fingerprints of the metadata entries) that `referenced` keeps."""
    stashes = repo.run(["reflog", "show", "--format=%H", "refs/stash"], cwd=top, check=False).decode().split()
    args = ["--all", *(["--reflog"] if reflog else []), "--indexed-objects", *stashes]
    blobs = history.small_blobs(args, top, "git theta prune")
    keep = history.lfs_pointer_oids(blobs, top)
    fingerprints = set()
    for _, meta in history.metadata_in(blobs, top):
        for entry in meta.params.values():
            keep.update(objects_of(entry))
            fingerprints.add(verified.fingerprint(entry))
    return keep, fingerprints


DEFAULT_EXPIRE = "2.weeks.ago"  # git's default gc.pruneExpire


def expire_setting() -> str:
    """The expiry date: GIT_THETA_PRUNE_EXPIRE / theta.pruneExpire, else gc.pruneExpire, else git's default."""
    return config.get("prune_expire") or repo.config_get("gc.pruneExpire") or DEFAULT_EXPIRE


def expiry_time(expire: str) -> float:
    """Seconds since the epoch at or before which an unreferenced object may go, parsed as git
    parses gc.pruneExpire (`2.weeks.ago`, `1.hour.ago`, `2024-05-01`, `now`, `never`)."""
    proc = repo.run(
        ["-c", f"theta.expire={expire}", "config", "--type=expiry-date", "theta.expire"], check=False
    )
    try:
        return float(proc.decode().strip())
    except ValueError:
        raise ThetaError(
            f"prune expiry {expire!r} is not a date git understands; use e.g. 2.weeks.ago, 1.day.ago, now "
            "or never (--expire, GIT_THETA_PRUNE_EXPIRE, theta.pruneExpire)"
        ) from None


def local_objects(store: LfsStore) -> dict[str, str]:
    """oid -> path of every object in the local store."""
    found = {}
    for d, _, files in os.walk(store.objects_dir):
        for f in files:
            if len(f) == 64:
                found[f] = os.path.join(d, f)
    return found


def prune(
    force: bool = False, cwd: str | None = None, expire: str | None = None, reflog: bool = True
) -> PruneReport:
    """What to delete (and, with `force`, delete it): unreferenced objects older than `expire`.

    Everything is decided under the objects lock held exclusive, so the objects of a running
    `git add`, save or merge are either recorded (and kept) or not yet written."""
    top = repo.root(cwd)
    expire = expire or expire_setting()
    cutoff = expiry_time(expire)
    store = LfsStore.for_cwd(top)
    with objects_lock.pruning(top):
        keep, fingerprints = _reachable(top, reflog)
        report = PruneReport({}, 0, 0, expire=expire)
        for oid, path in local_objects(store).items():
            st = os.stat(path)
            if oid in keep:
                report.keep += 1
                report.keep_bytes += st.st_size
            elif st.st_mtime > cutoff:
                report.recent += 1
                report.recent_bytes += st.st_size
            else:
                report.delete[oid] = st.st_size
        stale = stale_temp_files(store, top)
        report.stale_temp_files = len(stale)
        report.replaced_bytes = replaced.free(repo.git_path(replaced.DIR, top), dry_run=not force)
        if force:
            for oid in report.delete:
                os.unlink(store.path(oid))
            for path in stale:
                os.unlink(path)
            verified.retain(store, fingerprints)  # the record of checked entries stays what is referenced
    return report
