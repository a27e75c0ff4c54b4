"""`git theta track` / `untrack`: route files through git-theta with .gitattributes."""

import os
import subprocess

from git_theta.errors import ThetaError
from git_theta.git import attributes, history, repo, tracking
from git_theta.metadata import MAX_METADATA, is_metadata


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
    pattern = _pattern(path_or_pattern, top, cwd)
    tracking.track_pattern(top, pattern)
    return pattern


def stage_committed_raw(path_or_pattern: str, cwd: str | None = None) -> list[str]:
    """Stage through git-theta the files `path_or_pattern` names whose index copy is raw (committed
    before they were tracked), so the next commit stores them as metadata; their paths."""
    cwd = os.path.abspath(cwd or os.getcwd())
    top = repo.root(cwd)
    listed = repo.run(["ls-files", "-s", "-z", "--full-name", "--", path_or_pattern], cwd=cwd)
    blobs = {}
    for rec in listed.split(b"\0"):
        info, _, path = rec.decode().partition("\t")
        if path and info.endswith(" 0"):  # stage 0: not a conflict
            blobs[info.split()[1]] = path
    tracked = set(attributes.tracked_paths(list(blobs.values()), top))
    blobs = {sha: path for sha, path in blobs.items() if path in tracked}
    sizes = history.blob_sizes(list(blobs), top)
    raw = sorted(
        path
        for sha, path in blobs.items()
        if sizes.get(sha)  # an empty file passes the filter as is
        and (sizes[sha] > MAX_METADATA or not is_metadata(repo.read_blob(sha, cwd=top) or b""))
    )
    if raw:
        repo.run(["--literal-pathspecs", "add", "--renormalize", "--", *raw], cwd=top)
    return raw


def untrack(path_or_pattern: str, cwd: str | None = None) -> bool:
    """Stop tracking a pattern added by `track`; stage .gitattributes."""
    cwd = os.path.abspath(cwd or os.getcwd())
    top = repo.root(cwd)
    pattern = _pattern(path_or_pattern, top, cwd)
    changed = attributes.remove_pattern(os.path.join(top, ".gitattributes"), pattern)
    if changed:
        subprocess.run(["git", "add", ".gitattributes"], cwd=top, check=True, capture_output=True)
    return changed
