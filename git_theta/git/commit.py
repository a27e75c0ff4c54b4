"""Commit blobs at given paths on top of HEAD by plumbing, without touching other staged changes."""

import os
import tempfile

from git_theta.git import repo


def write_blob(data: bytes, cwd: str) -> str:
    """Store `data` as a git blob; its sha."""
    return repo.run(["hash-object", "-w", "--stdin"], cwd=cwd, input=data).decode().strip()


def commit_paths(top: str, blobs: dict[str, str], message: str) -> str:
    """A commit of HEAD's tree with `blobs` (path -> blob sha) put in; HEAD's branch moves to it.

    A temporary index is used, so whatever else the user has staged stays staged and out of
    the commit; the real index then records the committed blobs for those paths.
    """
    fd, index = tempfile.mkstemp(prefix="theta-index-", dir=repo.git_path("", cwd=top))
    os.close(fd)
    os.remove(index)  # git wants to create it
    env = dict(os.environ, GIT_INDEX_FILE=index)
    try:
        has_head = repo.is_commit("HEAD", cwd=top)
        repo.run(["read-tree", "HEAD"] if has_head else ["read-tree", "--empty"], cwd=top, env=env)
        for path, blob in blobs.items():
            repo.run(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=top, env=env)
        tree = repo.run(["write-tree"], cwd=top, env=env).decode().strip()
    finally:
        if os.path.exists(index):
            os.remove(index)
    parents = ["-p", "HEAD"] if has_head else []
    commit = (
        repo.run(["commit-tree", tree, *parents, "-F", "-"], cwd=top, input=message.encode()).decode().strip()
    )
    subject = message.splitlines()[0] if message else ""
    repo.run(["update-ref", "-m", f"commit: {subject}", "HEAD", commit], cwd=top)
    for path, blob in blobs.items():
        repo.run(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=top)
    return commit
