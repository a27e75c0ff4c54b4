"""Tracking checkpoints with git-theta: the paths .gitattributes routes through its filter, and
adding a pattern there with git-theta registered (shared by `git theta track`, the API and the
merge CLI)."""

import os
import subprocess

from git_theta.git import attributes, hooks, repo
from git_theta.git.install import install, is_installed


def tracked_files(cwd: str | None = None, rev: str | None = None) -> list[str]:
    """Paths (relative to the repository root) with filter=theta, in the index or at `rev`."""
    top = repo.root(cwd)
    cmd = ["ls-files", "-z"] if rev is None else ["ls-tree", "-r", "-z", "--name-only", rev]
    names = [p.decode() for p in repo.run(cmd, cwd=top).split(b"\0") if p]
    return attributes.tracked_paths(names, os.path.abspath(top))


def track_pattern(top: str, pattern: str) -> None:
    """Add a .gitattributes pattern (relative to the root `top`) and stage .gitattributes, first
    registering git-theta in this repository when it is not (else refreshing its hooks)."""
    repo.require_lfs()
    if not is_installed(top):
        install("repository", cwd=top)
    else:
        hooks.install_hooks(top)
    attributes.add_pattern(os.path.join(top, ".gitattributes"), pattern)
    subprocess.run(["git", "add", ".gitattributes"], cwd=top, check=True, capture_output=True)


def attributes_blob_for(top: str, rel: str, ref: str = "HEAD") -> dict[str, str]:
    """Track `rel` if it is not yet; {".gitattributes": blob} to commit along when `ref` lacks
    the staged version (for commits made by plumbing: the API, the merge CLI)."""
    if not attributes.tracked_paths([rel], top):
        track_pattern(top, attributes.escape_pattern(rel))
    elif os.path.exists(os.path.join(top, ".gitattributes")):
        repo.run(["add", ".gitattributes"], cwd=top)  # tracked by a file never staged
    staged = (
        repo.run(["rev-parse", "-q", "--verify", ":.gitattributes"], cwd=top, check=False).decode().strip()
    )
    committed = repo.run(["rev-parse", "-q", "--verify", f"{ref}:.gitattributes"], cwd=top, check=False)
    return {".gitattributes": staged} if staged and staged != committed.decode().strip() else {}
