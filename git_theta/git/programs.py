"""How git finds git-theta's programs (filter, diff and merge drivers, hooks) when it runs them.

Git runs drivers by name through the shell, so a name works only while git-theta's scripts are on
PATH. A virtual environment's `bin/` is on PATH only while it is activated, and a git command run
elsewhere (an IDE, a cron job, another terminal) then failed with "the remote end hung up
unexpectedly". So the config and hooks name a program by its absolute path whenever the name
alone would not find this installation's script for sure.
"""

import os
import shlex
import shutil
import sys
import sysconfig

PROGRAMS = ("git-theta", "git-theta-filter", "git-theta-diff", "git-theta-merge")


def _candidate_dirs() -> list[str]:
    dirs = []
    if os.path.basename(sys.argv[0] or "").startswith("git-theta"):
        dirs.append(os.path.dirname(os.path.abspath(sys.argv[0])))  # the script running now
    dirs.append(os.path.dirname(os.path.abspath(sys.executable)))  # a venv's or prefix's bin/
    for scheme in (None, f"{os.name}_user"):
        try:
            dirs.append(sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts"))
        except KeyError:
            pass
    return dirs


def scripts_dir() -> str | None:
    """The folder holding this installation's git-theta scripts, if one holds them all."""
    for d in _candidate_dirs():
        if all(os.access(os.path.join(d, p), os.X_OK) for p in PROGRAMS):
            return d
    return None


def in_virtualenv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def program(name: str) -> str:
    """How to name this installation's `name`: the bare name when PATH finds exactly this script
    and it does not live in a virtual environment (whose bin/ comes and goes from PATH), else its
    absolute path."""
    folder = scripts_dir()
    if folder is None:
        return name
    path = os.path.join(folder, name)
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(path) and not in_virtualenv():
        return name
    return path


def command(name: str) -> str:
    """program(name) as one shell word (git runs drivers through the shell)."""
    return shlex.quote(program(name))
