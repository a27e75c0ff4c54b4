"""`git theta pre-push REMOTE URL` (run by the hook): upload the LFS objects of pushed models."""

import os

from git_theta.git import repo


def _rev_list_args(local_shas: list[str], remote: str, remote_shas: list[str]) -> list[str]:
    """What is reachable from the pushed commits but not from what the remote already has (a
    remote commit we do not have is left out by git: --ignore-missing, one git call less per ref)."""
    exclude = [f"^{sha}" for sha in remote_shas if sha != repo.ZERO]
    return ["--ignore-missing", *local_shas, *exclude, "--not", f"--remotes={remote}"]


def _objects_of(blobs: list[str], cwd: str) -> dict[str, int]:
    """oid -> size of every LFS object that the metadata blobs among `blobs` reference."""
    from git_theta.git import history
    from git_theta.updates import objects_of

    found: dict[str, int] = {}
    for _, meta in history.metadata_in(blobs, cwd):
        for entry in meta.params.values():
            found.update(objects_of(entry))
    return found


def pre_push(remote: str, url: str, lines: list[str], cwd: str | None = None) -> int:
    """Push the objects referenced by models in the pushed commits (git-lfs skips known ones)."""
    updates = [line.split() for line in lines if line.strip()]
    local = [u[1] for u in updates if len(u) == 4 and u[1] != repo.ZERO]
    if not local:
        return 0
    remote_shas = [u[3] for u in updates if len(u) == 4]
    here = os.path.abspath(cwd or os.getcwd())  # git runs hooks at the work tree's top
    rev_list = ["rev-list", "--objects", *_rev_list_args(local, remote, remote_shas)]
    # the git calls below, started at once: they run while the modules load (~6 ms of this hook);
    # where `here` is not the top, each is simply made again when asked
    repo.start(rev_list, here)
    from git_theta.storage import transfer

    transfer.look_ahead(here)
    from git_theta.git import history
    from git_theta.logs import get_logger
    from git_theta.storage.lfs_store import LfsStore

    repo.cache_config()  # a hook: reads config only, ~10 keys
    repo.prime([], cwd)  # the top and the common dir in one git call
    top = repo.root(cwd)
    blobs = history.small_blobs(rev_list[2:], top, "git push")
    objects = _objects_of(blobs, top)
    store = LfsStore.for_cwd(top)
    present = sorted(oid for oid in objects if store.has(oid))
    if len(present) < len(objects):
        get_logger(__name__).info(
            "%d referenced objects are not local; assuming the remote has them", len(objects) - len(present)
        )
    if present:
        transfer.push(remote if remote else url, present, top, store)
    return 0
