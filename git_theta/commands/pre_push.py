"""`git theta pre-push REMOTE URL` (run by the hook): upload the LFS objects of pushed models."""

from git_theta.git import history, repo
from git_theta.git.history import ZERO
from git_theta.logs import get_logger
from git_theta.storage import transfer
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import objects_of

log = get_logger(__name__)


def _new_blobs(local_shas: list[str], remote: str, remote_shas: list[str], cwd: str) -> list[str]:
    """Blobs reachable from the pushed commits but not from what the remote already has (a
    remote commit we do not have is left out by git: --ignore-missing, one git call less per ref)."""
    exclude = [f"^{sha}" for sha in remote_shas if sha != ZERO]
    return history.small_blobs(
        ["--ignore-missing", *local_shas, *exclude, "--not", f"--remotes={remote}"], cwd, "git push"
    )


def _objects_of(blobs: list[str], cwd: str) -> dict[str, int]:
    """oid -> size of every LFS object that the metadata blobs among `blobs` reference."""
    found: dict[str, int] = {}
    for _, meta in history.metadata_in(blobs, cwd):
        for entry in meta.params.values():
            found.update(objects_of(entry))
    return found


def pre_push(remote: str, url: str, lines: list[str], cwd: str | None = None) -> int:
    """Push the objects referenced by models in the pushed commits (git-lfs skips known ones)."""
    repo.cache_config()  # a hook: reads config only, ~10 keys
    repo.prime([], cwd)  # the top and the common dir in one git call
    top = repo.root(cwd)
    updates = [line.split() for line in lines if line.strip()]
    local = [u[1] for u in updates if len(u) == 4 and u[1] != ZERO]
    if not local:
        return 0
    remote_shas = [u[3] for u in updates if len(u) == 4]
    objects = _objects_of(_new_blobs(local, remote, remote_shas, top), top)
    store = LfsStore.for_cwd(top)
    present = sorted(oid for oid in objects if store.has(oid))
    if len(present) < len(objects):
        log.info(
            "%d referenced objects are not local; assuming the remote has them", len(objects) - len(present)
        )
    if present:
        transfer.push(remote if remote else url, present, top, store)
    return 0
