"""`git theta ls-files`: the checkpoints in the index that git-theta tracks."""

import os

from git_theta.git import attributes, repo


def ls_files(cwd: str | None = None) -> list[str]:
    """Paths (relative to the repository root) of indexed files with filter=theta."""
    top = repo.root(cwd)
    names = [p.decode() for p in repo.run(["ls-files", "-z"], cwd=top).split(b"\0") if p]
    return attributes.tracked_paths(names, os.path.abspath(top))
