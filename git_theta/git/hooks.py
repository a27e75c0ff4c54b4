"""git-theta's hooks, each chained with any hook of that name the user already has.

pre-push uploads the LFS objects of pushed models; post-checkout and post-merge write the
checkpoints a low-memory smudge left as metadata (see filter.deferred).
"""

import os
import shlex
import stat

from git_theta.errors import ThetaError
from git_theta.git import programs, repo

MARKER = "# git-theta pre-push hook"  # the pre-push hook's marker (kept: older installs carry it)
CHAINED = "pre-push.pre-theta"

PENDING = "theta-pending-checkout"  # under the git dir: paths whose checkpoints are still to write
_WRITE_PENDING = (  # nothing to do, and no interpreter started, unless a checkout was deferred
    # what `git rev-parse --git-path` answers here when .git is a folder, without starting git
    f'if [ -z "$GIT_DIR$GIT_COMMON_DIR" ] && [ -d .git ]; then pending=.git/{PENDING}\n'
    f'else pending="$(git rev-parse --git-path {PENDING})"; fi\n'
    'if [ -s "$pending" ]; then\n{find}  "$git_theta" checkout-models --pending || exit $?\nfi\n'
)
# The installation that wrote the hook first (a virtual environment need not be on PATH when git
# runs the hook), else whatever git-theta PATH finds.
_FIND_GIT_THETA = (
    "git_theta={program}\n"
    '[ -x "$git_theta" ] || git_theta=git-theta\n'
    'command -v "$git_theta" >/dev/null 2>&1 || {{\n'
    '  echo >&2 "git-theta is not installed (looked for {program} and on PATH); install it '
    '(pip install git-theta) or remove .git/hooks/{name}"\n'
    "  exit 2\n}}\n"
)
# name -> (what it does, our part of the script, whether git gives it input on stdin)
_HOOKS = {
    "pre-push": (
        "uploads the LFS objects of pushed models",
        _FIND_GIT_THETA
        # with no hook to chain, the hook becomes git-theta: no copy of the input through the shell
        + '[ -x "$chained" ] || exec "$git_theta" pre-push "$@"\n'
        + 'input=$(cat)\nprintf \'%s\\n\' "$input" | "$git_theta" pre-push "$@" || exit $?\n',
        True,
    ),
    "post-checkout": ("writes checkpoints left as metadata by a low-memory checkout", _WRITE_PENDING, False),
    "post-merge": ("writes checkpoints left as metadata by a low-memory checkout", _WRITE_PENDING, False),
}
NAMES = tuple(_HOOKS)


def marker(name: str) -> str:
    return f"# git-theta {name} hook"


def chained_name(name: str) -> str:
    return f"{name}.pre-theta"


def hook_text(name: str) -> str:
    """The script of hook `name`: our part, then the user's older hook with the same arguments and input."""
    purpose, body, stdin = _HOOKS[name]
    chained = chained_name(name)
    program = shlex.quote(programs.program("git-theta"))
    find = "".join("  " + line + "\n" for line in _FIND_GIT_THETA.splitlines())
    feed = "printf '%s\\n' \"$input\" | " if stdin else ""
    return (
        f"#!/bin/sh\n{marker(name)}: {purpose}, then runs {chained} if present.\n"
        # the hook's folder without a dirname process (git names a hook by a path with a slash)
        + f'case "$0" in */*) chained="${{0%/*}}/{chained}" ;; *) chained="./{chained}" ;; esac\n'
        + body.format(name=name, program=program, find=find.format(name=name, program=program))
        + f'if [ -x "$chained" ]; then\n  {feed}"$chained" "$@" || exit $?\nfi\n'
        + "exit 0\n"
    )


def ensure_hooks(cwd: str | None = None) -> None:
    """Install any of our hooks this repository lacks (a fresh clone has none); never fails."""
    try:
        paths = repo.git_paths([f"hooks/{name}" for name in NAMES], cwd)
    except ThetaError:
        return
    for name, path in zip(NAMES, paths):
        try:
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    if marker(name) in f.read():
                        continue
            install_hook(name, cwd)
        except (OSError, ThetaError):
            pass


def install_hooks(cwd: str | None = None) -> list[str]:
    """Write all our hooks; returns their paths."""
    return [install_hook(name, cwd) for name in NAMES]


def install_hook(name: str, cwd: str | None = None) -> str:
    """Write hook `name`; a hook that is not ours is kept as NAME.pre-theta and chained."""
    path = repo.git_path(f"hooks/{name}", cwd)
    text = hook_text(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            current = f.read()
        if current == text:
            return path
        if marker(name) not in current:
            chained = os.path.join(os.path.dirname(path), chained_name(name))
            if os.path.exists(chained):  # never lose a user's hook: number the older copies
                n = 1
                while os.path.exists(f"{chained}.{n}"):
                    n += 1
                os.replace(chained, f"{chained}.{n}")
            os.replace(path, chained)
    tmp = path + ".theta-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)
    return path


def install_pre_push(cwd: str | None = None) -> str:
    """Write our pre-push hook (the name earlier versions used)."""
    return install_hook("pre-push", cwd)
