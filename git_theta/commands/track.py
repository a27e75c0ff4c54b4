"""`git theta track` / `untrack`: route files through git-theta with .gitattributes."""

import os
import subprocess

from git_theta.commands.install import install, is_installed
from git_theta.errors import ThetaError
from git_theta.git import attributes, hooks, repo


def _pattern(path_or_pattern: str, top: str, cwd: str) -> str:
    """A .gitattributes pattern, relative to the repository root, for what the user typed."""
    absolute = os.path.normpath(os.path.join(cwd, path_or_pattern))
    rel = os.path.relpath(absolute, top).replace(os.sep, "/")
    if rel.startswith(".."):
        raise ThetaError(f"{path_or_pattern} is outside the repository {top}")
    return attributes.escape_pattern(rel)


def track(path_or_pattern: str, cwd: str | None = None) -> str:
    """Track a file or glob (from any subdirectory); stage .gitattributes. Returns the pattern."""
    cwd = os.path.abspath(cwd or os.getcwd())
    top = repo.root(cwd)
    repo.require_lfs()
    if not is_installed(top):
        install("repository", cwd=top)
    else:
        hooks.install_pre_push(top)
    pattern = _pattern(path_or_pattern, top, cwd)
    gitattributes = os.path.join(top, ".gitattributes")
    attributes.add_pattern(gitattributes, pattern)
    subprocess.run(["git", "add", ".gitattributes"], cwd=top, check=True, capture_output=True)
    return pattern


def untrack(path_or_pattern: str, cwd: str | None = None) -> bool:
    """Stop tracking a pattern added by `track`; stage .gitattributes."""
    cwd = os.path.abspath(cwd or os.getcwd())
    top = repo.root(cwd)
    pattern = _pattern(path_or_pattern, top, cwd)
    changed = attributes.remove_pattern(os.path.join(top, ".gitattributes"), pattern)
    if changed:
        subprocess.run(["git", "add", ".gitattributes"], cwd=top, check=True, capture_output=True)
    return changed
