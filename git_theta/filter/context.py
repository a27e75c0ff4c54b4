"""Which git command runs the filter: diffs need only the metadata, not the whole checkpoint.

Git smudges a blob before handing it to an external diff or textconv driver (`git diff`, `git log
-p`, `git show`). Rebuilding a multi-gigabyte checkpoint there is wasted work: our diff driver
reads the stored tensors it needs itself. So when the filter's git parent is a diff-only command,
smudge passes the metadata through. GIT_THETA_DIFF_SMUDGE=full turns this off.
"""

from functools import lru_cache

from git_theta.git.invocation import git_subcommand, subcommand

DIFF_COMMANDS = {"diff", "log", "show", "whatchanged", "range-diff", "diff-tree", "diff-index", "diff-files"}


def is_diff_only(argv: list[str]) -> bool:
    """True for a git command line that only diffs (never writes the work tree)."""
    sub = subcommand(argv)
    if not sub:
        return False
    if sub[0] in DIFF_COMMANDS:
        return True
    return sub[0] == "stash" and len(sub) > 1 and sub[1] == "show"


# git commands that run the post-checkout hook once the work tree is written (git 2.39: checkout
# and restore run it after a path checkout too; clone after its first checkout). reset, stash,
# merge (which skips post-merge on a conflict) and the rest run none: they get the whole file.
HOOKED_COMMANDS = {"checkout", "switch", "restore", "clone"}


def runs_post_checkout(argv: list[str]) -> bool:
    """True for a git command line that will run the post-checkout hook after its checkout;
    patch mode (-p) goes through other machinery and is excluded."""
    sub = subcommand(argv)
    if not sub or sub[0] not in HOOKED_COMMANDS:
        return False
    for arg in sub[1:]:
        if arg == "--":
            break
        if arg == "--patch" or (arg.startswith("-") and not arg.startswith("--") and "p" in arg):
            return False  # -p, or short options bundled with it (a false "no" only costs speed)
    return True


@lru_cache(maxsize=1)
def under_hooked_command() -> bool:
    """True when the nearest git process above this one will run post-checkout afterwards."""
    sub = git_subcommand()
    return bool(sub) and runs_post_checkout(["git", *sub])


@lru_cache(maxsize=1)
def in_diff_context() -> bool:
    """True when the nearest git process above this one is a diff-only command."""
    from git_theta import config

    if config.get_choice("diff_smudge") == "full":
        return False
    sub = git_subcommand()
    return bool(sub) and is_diff_only(["git", *sub])


def pass_through() -> bool:
    """Leave metadata as it is: GIT_THETA_SKIP_SMUDGE, or a diff command that reads it itself."""
    from git_theta import config

    return config.get_bool("skip_smudge") or in_diff_context()
