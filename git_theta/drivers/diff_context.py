"""Which two versions git compares when it runs the diff driver, read from the git command above it.

Git gives the driver two blobs, not the trees they come from, so a re-shard (tensors moved to
another file) cannot be seen from one file's two sides. `git diff [--cached] [-R] [A [B]]`,
`A..B`, `A...B` and `git show [C]` are understood; the guess is used only when the blobs git
passed are the ones at those versions, else the driver counts what is new to the file alone.
"""

from git_theta.diffs.revisions import WORKTREE, resolve, split_args
from git_theta.git import repo
from git_theta.git.invocation import git_subcommand

ZERO = repo.ZERO
Side = str | None  # a commit, "" for the index, WORKTREE (None)


def _revisions(args: list[str], top: str) -> list[str] | None:
    """Revisions among `git diff`'s positional arguments (A..B and A...B spelled out), None if odd."""
    words = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-"):
            continue
        left, dots, right = arg.partition("...") if "..." in arg else arg.partition("..")
        if not dots:
            words.append(arg)
            continue
        left, right = left or "HEAD", right or "HEAD"
        if dots == "...":
            base = repo.run(["merge-base", left, right], cwd=top, check=False).decode().split()
            if len(base) != 1:
                return None
            left = base[0]
        words += [left, right]
    return split_args(words, top)[0]


def _shown(revs: list[str], top: str) -> tuple[Side, Side] | None:
    """`git show [C]`: C's first parent against C, for a commit with one parent."""
    if len(revs) > 1:
        return None
    commit = revs[0] if revs else "HEAD"
    parents = repo.run(["rev-list", "--parents", "-n1", commit], cwd=top, check=False).split()
    return (f"{commit}^", commit) if len(parents) == 2 else None


def _guess(sub: list[str], top: str) -> tuple[Side, Side] | None:
    """The sides of a `git diff` or `git show` command line, as `git theta diff` resolves them."""
    if not sub or sub[0] not in ("diff", "show"):
        return None
    options = set(sub[1 : sub.index("--") if "--" in sub else len(sub)])
    revs = _revisions(sub[1:], top)
    if revs is None:
        return None
    if sub[0] == "show":
        return _shown(revs, top)
    cached = bool(options & {"--cached", "--staged"})
    if options & {"--no-index", "--merge-base"} or len(revs) > (1 if cached else 2):
        return None
    old, new = resolve(revs, cached)
    return (new, old) if "-R" in options else (old, new)


def _blob(side: Side, path: str, top: str) -> str | None:
    if side is WORKTREE:
        side = ""
    out = repo.run(["rev-parse", "-q", "--verify", f"{side}:{path}"], cwd=top, check=False).decode().strip()
    return out or None


def _matches(side: Side, path: str, hexsha: str, top: str) -> bool:
    """True when git's blob for one side of the driver call is `path` at `side`."""
    at = _blob(side, path, top)
    if hexsha == ".":  # no file on this side
        return at is None or side is WORKTREE
    if side is WORKTREE:  # a modified file (zeros), or one git saw unchanged from the index
        return hexsha == ZERO or hexsha == at
    return hexsha == at


def versions(old_path: str, old_hex: str, new_path: str, new_hex: str, top: str) -> tuple[Side, Side] | None:
    """(old, new) versions git is comparing, checked against the blobs it passed; None if unknown."""
    sides = _guess(git_subcommand(), top)
    if sides is None or sides[0] is WORKTREE:
        return None
    if _matches(sides[0], old_path, old_hex, top) and _matches(sides[1], new_path, new_hex, top):
        return sides
    return None
