"""Where a path given to the API lies: its repository and its path inside it (shared by save,
load, history and the original API's compat layer)."""

import os

from git_theta.errors import ThetaError
from git_theta.git import repo


def repo_path(path: str, repo_dir: str) -> tuple[str, str]:
    """(repository top, path relative to it with '/'), for a path given relative to `repo_dir`."""
    top = repo.root(repo_dir)
    full = path if os.path.isabs(path) else os.path.join(os.path.abspath(repo_dir), path)
    rel = os.path.relpath(full, top).replace(os.sep, "/")
    if rel.startswith("../"):
        raise ThetaError(f"{path}: outside the repository at {top}")
    return top, rel
