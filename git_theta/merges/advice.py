"""What to tell a user whose merge of a file stopped: the state it is left in, how to abort or go on."""

import shlex

from git_theta.git.invocation import git_subcommand

# git commands that run merge drivers and can be aborted and continued (pull runs `git merge`)
_OPERATIONS = {"merge": "merge", "pull": "merge", "rebase": "rebase", "cherry-pick": "cherry-pick"}
_OPERATIONS |= {"revert": "revert", "am": "am"}


def left_as_ours(path: str, why: str) -> str:
    """One line: why the file is unmerged, that it holds our version, and the commands that abort or resolve."""
    sub = git_subcommand()
    op = _OPERATIONS.get(sub[0]) if sub else None
    file = shlex.quote(path)
    abort = f"abort with `git {op} --abort`" if op else "`git status` says how to abort"
    go_on = {None: "", "merge": " and `git commit`"}.get(op, f" and `git {op} --continue`")
    return (
        f"{why}: {path} is left as our version with no parameter merged, and git marks it as a conflict; "
        f"{abort}, or resolve it with `git checkout --ours -- {file}` (or --theirs) or a strategy "
        f"(`GIT_THETA_MERGE_STRATEGY=average-ours-theirs git checkout -m -- {file}`), then `git add {file}`{go_on}"
    )
