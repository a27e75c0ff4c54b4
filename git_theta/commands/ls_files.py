"""`git theta ls-files`: the checkpoints in the index that git-theta tracks."""

import os

from git_theta.git import attributes, repo


def ls_files(cwd: str | None = None, rev: str | None = None) -> list[str]:
    """Paths (relative to the repository root) with filter=theta, in the index or at `rev`."""
    top = repo.root(cwd)
    cmd = ["ls-files", "-z"] if rev is None else ["ls-tree", "-r", "-z", "--name-only", rev]
    names = [p.decode() for p in repo.run(cmd, cwd=top).split(b"\0") if p]
    return attributes.tracked_paths(names, os.path.abspath(top))
