"""A clone made before `git theta install` has no theta filter, so git leaves each tracked
checkpoint as its metadata file: commands that meet one say so with the fix, or set git-theta up."""

import os

from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.git.install import install, is_installed
from git_theta.logs import get_logger
from git_theta.metadata import MAX_METADATA, is_metadata

log = get_logger(__name__)
FIX = "run `git theta install`, then `git theta checkout-models`"


def worktree_metadata(full: str) -> bytes | None:
    """The file's bytes when it is git-theta metadata (a checkpoint left unwritten), else None."""
    try:
        if not os.path.isfile(full) or os.path.getsize(full) > MAX_METADATA:
            return None
        with open(full, "rb") as f:
            if f.read(1) != b"{":  # checkpoints are read no further
                return None
            data = b"{" + f.read()
    except OSError:
        return None
    return data if is_metadata(data) else None


def left_as_metadata(top: str, paths: list[str]) -> list[str]:
    """Those tracked `paths` (relative to `top`) that are metadata because the filter is not set up."""
    if is_installed(top):
        return []
    return [p for p in paths if worktree_metadata(os.path.join(top, p)) is not None]


def not_set_up(paths: list[str]) -> ThetaError:
    """The one-line error for tracked files left as metadata by a clone without the filter."""
    more = f" (and {len(paths) - 1} more tracked file(s))" if len(paths) > 1 else ""
    return ThetaError(
        f"is git-theta metadata, not the checkpoint{more}: git-theta is not set up in this repository; {FIX}",
        paths[0],
    )


def require_set_up(top: str, paths: list[str]) -> None:
    """Refuse (ThetaError) when any of the tracked `paths` is metadata for want of the filter."""
    left = left_as_metadata(top, paths)
    if left:
        raise not_set_up(left)


def require_filter(top: str, paths: list[str]) -> None:
    """Refuse to stage tracked `paths` when the filter is not set up: git would store them raw."""
    if not paths or is_installed(top):
        return
    require_set_up(top, paths)
    raise ThetaError(
        "git-theta is not set up in this repository, so git would store the checkpoint raw; "
        "run `git theta install`, then this command again",
        paths[0],
    )


def warning(paths: list[str] | None = None, cwd: str | None = None) -> str | None:
    """A one-line warning for commands that still work (they read git, not the files), naming
    tracked files (default: all) left as metadata; None when all is set up."""
    from git_theta.git.tracking import tracked_files

    top = repo.root(cwd)
    if is_installed(top):
        return None
    left = left_as_metadata(top, tracked_files(top) if paths is None else paths)
    return f"warning: {not_set_up(left)}" if left else None


def set_up(top: str) -> bool:
    """Register the filter for this repository when it is not set up (as `git theta track`
    does); True when it had to."""
    if is_installed(top):
        return False
    install("repository", cwd=top)
    log.warning(
        "git-theta was not set up in this repository: registered its filter here "
        "(`git theta install` does it for every repository)"
    )
    return True
