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


def checkout_models(paths: list[str] | None = None, cwd: str | None = None) -> list[str]:
    """Replace working-tree metadata files (left by GIT_THETA_SKIP_SMUDGE) with their checkpoints."""
    from git_theta.filter.smudge import prepare

    top = repo.root(cwd)
    done = []
    for path in paths or ls_files(top):
        full = os.path.join(top, path)
        if not os.path.isfile(full) or os.path.getsize(full) > (512 << 20):
            continue
        with open(full, "rb") as f:
            data = f.read()
        if not is_metadata(data):
            continue
        write = prepare(data, path, top)  # fetches what is missing before anything is written
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".theta-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            os.chmod(tmp, os.stat(full).st_mode)
            os.replace(tmp, full)
        except BaseException:
            os.unlink(tmp)
            raise
        done.append(path)
    if done:
        repo.run(["update-index", "-q", "--refresh", "--", *done], cwd=top, check=False)
    return done
