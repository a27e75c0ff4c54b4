"""`git theta prune [--force]`: delete local LFS objects nothing worth keeping refers to.

Kept: every object referenced by a commit reachable from any ref (branches, tags, remote-tracking
refs, stashes), HEAD, or the index, plus objects of plain Git LFS pointer files. So unpushed
commits keep their tensors; what goes is what only deleted branches, abandoned merges and
never-committed `git add`s referred to. Without --force it only reports.
"""

import os
import time
from dataclasses import dataclass

from git_theta.git import history, repo
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import objects_of


@dataclass
class PruneReport:
    delete: dict[str, int]  # oid -> bytes
    keep: int
    keep_bytes: int
    stale_temp_files: int = 0


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


def referenced(top: str) -> set[str]:
    """Every oid the retained history, the index and stashes refer to."""
    stashes = repo.run(["reflog", "show", "--format=%H", "refs/stash"], cwd=top, check=False).decode().split()
    blobs = history.small_blobs(["--all", "HEAD", *stashes], top) if _has_head(top) else []
    index = [line.split()[1] for line in repo.run(["ls-files", "-s"], cwd=top).decode().splitlines() if line]
    blobs = list(dict.fromkeys(blobs + index))
    keep = history.lfs_pointer_oids(blobs, top)
    for _, meta in history.metadata_in(blobs, top):
        for entry in meta.params.values():
            keep.update(objects_of(entry))
    return keep


def _has_head(top: str) -> bool:
    return repo.is_commit("HEAD", top)


def local_objects(store: LfsStore) -> dict[str, str]:
    """oid -> path of every object in the local store."""
    found = {}
    for d, _, files in os.walk(store.objects_dir):
        for f in files:
            if len(f) == 64:
                found[f] = os.path.join(d, f)
    return found


def prune(force: bool = False, cwd: str | None = None) -> PruneReport:
    top = repo.root(cwd)
    store = LfsStore.for_cwd(top)
    keep = referenced(top)
    delete, kept, kept_bytes = {}, 0, 0
    for oid, path in local_objects(store).items():
        size = os.path.getsize(path)
        if oid in keep:
            kept += 1
            kept_bytes += size
        else:
            delete[oid] = size
    stale = stale_temp_files(store, top)
    if force:
        for oid in delete:
            os.unlink(store.path(oid))
        for path in stale:
            os.unlink(path)
    return PruneReport(delete, kept, kept_bytes, len(stale))
