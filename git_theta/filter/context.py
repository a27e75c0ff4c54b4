"""Which git command runs the filter: diffs need only the metadata, not the whole checkpoint.

Git smudges a blob before handing it to an external diff or textconv driver (`git diff`, `git log
-p`, `git show`). Rebuilding a multi-gigabyte checkpoint there is wasted work: our diff driver
reads the stored tensors it needs itself. So when the filter's git parent is a diff-only command,
smudge passes the metadata through. GIT_THETA_DIFF_SMUDGE=full turns this off.
"""

import os
from functools import lru_cache

from git_theta.procs import cmdline, parent

DIFF_COMMANDS = {"diff", "log", "show", "whatchanged", "range-diff", "diff-tree", "diff-index", "diff-files"}
_GLOBAL_WITH_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"}


def _subcommand(argv: list[str]) -> list[str]:
    """git's arguments after its global options."""
    args = argv[1:]
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GLOBAL_WITH_VALUE else 1
    return args[i:]


def is_diff_only(argv: list[str]) -> bool:
    """True for a git command line that only diffs (never writes the work tree)."""
    sub = _subcommand(argv)
    if not sub:
        return False
    if sub[0] in DIFF_COMMANDS:
        return True
    return sub[0] == "stash" and len(sub) > 1 and sub[1] == "show"


def git_subcommand() -> list[str]:
    """The nearest git process above this one: its subcommand and arguments ([] when none)."""
    pid = os.getppid()
    for _ in range(3):  # git, or a shell that git started, or that shell's parent
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) == "git":
            return _subcommand(argv)
        up = parent(pid)
        if not up or up == pid:
            return []
        pid = up
    return []


@lru_cache(maxsize=1)
def in_diff_context() -> bool:
    """True when the nearest git process above this one is a diff-only command."""
    if os.environ.get("GIT_THETA_DIFF_SMUDGE", "").lower() == "full":
        return False
    sub = git_subcommand()
    return bool(sub) and is_diff_only(["git", *sub])


def pass_through() -> bool:
    """Leave metadata as it is: GIT_THETA_SKIP_SMUDGE, or a diff command that reads it itself."""
    from git_theta import config

    return config.get_bool("skip_smudge") or in_diff_context()
