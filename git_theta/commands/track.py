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
        hooks.install_hooks(top)
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


def attributes_blob_for(top: str, rel: str, ref: str = "HEAD") -> dict[str, str]:
    """Track `rel` if it is not yet; {".gitattributes": blob} to commit along when `ref` lacks
    the staged version (for commits made by plumbing: the API, the merge CLI)."""
    if not attributes.tracked_paths([rel], top):
        track(rel, cwd=top)
    elif os.path.exists(os.path.join(top, ".gitattributes")):
        repo.run(["add", ".gitattributes"], cwd=top)  # tracked by a file never staged
    staged = (
        repo.run(["rev-parse", "-q", "--verify", ":.gitattributes"], cwd=top, check=False).decode().strip()
    )
    committed = repo.run(["rev-parse", "-q", "--verify", f"{ref}:.gitattributes"], cwd=top, check=False)
    return {".gitattributes": staged} if staged and staged != committed.decode().strip() else {}
