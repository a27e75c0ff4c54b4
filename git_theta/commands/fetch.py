"""`git theta fetch`: download the LFS objects of tracked models at a revision, in one batch."""

from git_theta.commands.ls_files import ls_files
from git_theta.errors import ThetaError
from git_theta.filter.smudge import ensure_objects
from git_theta.git import repo
from git_theta.metadata import Metadata, is_metadata
from git_theta.storage.lfs_store import LfsStore


def fetch(rev: str = "HEAD", paths: list[str] | None = None, cwd: str | None = None) -> int:
    top = repo.root(cwd)
    store = LfsStore.for_cwd(top)
    for path in paths or ls_files(top):
        blob = repo.read_blob(f"{rev}:{path}", cwd=top)
        if blob is None:
            raise ThetaError(f"{path}: not in {rev}")
        if is_metadata(blob):
            ensure_objects(Metadata.loads(blob, path), store, top, path)
    return 0
