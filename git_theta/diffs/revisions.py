"""Model diffs between two revisions, the index or the working tree (`git theta diff [REV_A] [REV_B]
[-- PATH...]`, `git_theta.diff` and the diff driver's guess at what git compares).

Like `git diff`: no revision compares the index with the working tree, one compares it with the
working tree, two compare the two; `--cached` compares a revision (HEAD) with the index.
"""

import os

from git_theta.diffs.baseline import Baseline
from git_theta.diffs.compute import ModelDiff, compare
from git_theta.diffs.sides import PLAIN_BLOB, WORKING_TREE, ModelSide, side_from_bytes
from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.git.tracking import tracked_files
from git_theta.setup_check import require_set_up
from git_theta.storage.lfs_store import LfsStore

WORKTREE = None  # a side that is the working-tree file


def _tracked_at(rev: str | None, top: str) -> list[str]:
    """Tracked checkpoints on a side: the work tree and the index ("") use the index's list."""
    return tracked_files(top, None if rev is WORKTREE or rev == "" else rev)


def _side(rev: str | None, path: str, top: str, store: LfsStore, dirty: set[str]) -> ModelSide:
    """A working-tree file that git sees unchanged from the index is the index's (stored) version,
    as git's own diff driver is given it."""
    if rev is WORKTREE and path in dirty:
        full = os.path.join(top, path)
        data = open(full, "rb").read() if os.path.exists(full) else None
        return side_from_bytes(path, data, store, top, WORKING_TREE)
    data = repo.read_blob(f"{rev or ''}:{path}", cwd=top)
    return side_from_bytes(path, data, store, top, PLAIN_BLOB)


def _dirty(top: str) -> set[str]:
    """Paths whose working-tree file differs from the index, by git's stat check (or is deleted)."""
    return {p.decode() for p in repo.run(["diff-files", "--name-only", "-z"], cwd=top).split(b"\0") if p}


def split_args(args: list[str], cwd: str | None = None) -> tuple[list[str], list[str]]:
    """Leading arguments that name commits are revisions, the rest paths (as git guesses)."""
    top = repo.root(cwd)
    revs: list[str] = []
    for i, arg in enumerate(args):
        is_rev = repo.is_commit(arg, top)
        if not is_rev or os.path.exists(arg):
            return revs, args[i:]
        revs.append(arg)
    return revs, []


def resolve(revs: list[str], cached: bool) -> tuple[str | None, str | None]:
    """(old, new) sides: a revision, "" for the index, or WORKTREE."""
    if len(revs) > 2:
        raise ThetaError("git theta diff takes at most two revisions")
    if cached:
        if len(revs) > 1:
            raise ThetaError("--cached takes at most one revision")
        return (revs[0] if revs else "HEAD"), ""
    if len(revs) == 2:
        return revs[0], revs[1]
    if len(revs) == 1:
        return revs[0], WORKTREE
    return "", WORKTREE


def diff(
    revs: list[str], paths: list[str], cached: bool = False, cwd: str | None = None, with_numbers: bool = True
) -> list[ModelDiff]:
    """Diffs of every tracked checkpoint (or of `paths`) that differs between the two sides."""
    top = repo.root(cwd)
    for rev in revs:
        if not repo.is_commit(rev, top):
            raise ThetaError(f"unknown revision {rev!r}")
    old_rev, new_rev = resolve(revs, cached)
    store = LfsStore.for_cwd(top)
    wanted = sorted(set(_tracked_at(old_rev, top)) | set(_tracked_at(new_rev, top)))
    if paths:
        rel = {os.path.relpath(os.path.abspath(p), top).replace(os.sep, "/") for p in paths}
        unknown = rel - set(wanted)
        if unknown:
            raise ThetaError(f"not a tracked checkpoint on either side: {', '.join(sorted(unknown))}")
        wanted = [p for p in wanted if p in rel]
    if new_rev is WORKTREE:
        require_set_up(top, wanted)  # else the working "model" is its metadata, equal to the index
    dirty = _dirty(top) if WORKTREE in (old_rev, new_rev) else set()
    before = Baseline(old_rev, new_rev, top)
    out = []
    for path in wanted:
        old, new = _side(old_rev, path, top, store, dirty), _side(new_rev, path, top, store, dirty)
        result = compare(old, new, with_numbers, before.known(path))
        if result.changes or result.old_format != result.new_format:
            out.append(result)
    return out
