"""`git theta fetch [REMOTE] [REV...]`: download the tensors of revisions ahead of time, in one batch."""

from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.git.tracking import tracked_files
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
        for path in paths or tracked_files(top, rev):
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
