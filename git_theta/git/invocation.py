"""The git command this process runs under: its subcommand and arguments, read from the process
tree (the filter, drivers and hooks adapt to the command that started them)."""

import os

from git_theta.procs import cmdline, parent

_GLOBAL_WITH_VALUE = {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"}


def subcommand(argv: list[str]) -> list[str]:
    """git's arguments after its global options."""
    args = argv[1:]
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _GLOBAL_WITH_VALUE else 1
    return args[i:]


def git_subcommand() -> list[str]:
    """The nearest git process above this one: its subcommand and arguments ([] when none)."""
    pid = os.getppid()
    for _ in range(3):  # git, or a shell that git started, or that shell's parent
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) == "git":
            return subcommand(argv)
        up = parent(pid)
        if not up or up == pid:
            return []
        pid = up
    return []
