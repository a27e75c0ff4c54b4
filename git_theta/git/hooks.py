"""The pre-push hook that uploads LFS objects; chained with any hook the user already has."""

import os
import stat

from git_theta.errors import ThetaError
from git_theta.git import repo

MARKER = "# git-theta pre-push hook"
CHAINED = "pre-push.pre-theta"

HOOK = f"""#!/bin/sh
{MARKER}: uploads the LFS objects of pushed models, then runs {CHAINED} if present.
command -v git-theta >/dev/null 2>&1 || {{
  echo >&2 "git-theta is not on PATH; install it (pip install git-theta) or remove .git/hooks/pre-push"
  exit 2
}}
input=$(cat)
printf '%s\\n' "$input" | git-theta pre-push "$@" || exit $?
chained="$(dirname "$0")/{CHAINED}"
if [ -x "$chained" ]; then
  printf '%s\\n' "$input" | "$chained" "$@" || exit $?
fi
exit 0
"""


def ensure_pre_push(cwd: str | None = None) -> None:
    """Install the hook if this repository lacks it (a fresh clone has none); never fails."""
    try:
        path = repo.git_path("hooks/pre-push", cwd)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                if MARKER in f.read():
                    return
        install_pre_push(cwd)
    except (OSError, ThetaError):
        pass


def install_pre_push(cwd: str | None = None) -> str:
    """Write our pre-push hook; a hook that is not ours is kept as pre-push.pre-theta and chained."""
    path = repo.git_path("hooks/pre-push", cwd)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            current = f.read()
        if current == HOOK:
            return path
        if MARKER not in current:
            chained = os.path.join(os.path.dirname(path), CHAINED)
            if os.path.exists(chained):  # never lose a user's hook: number the older copies
                n = 1
                while os.path.exists(f"{chained}.{n}"):
                    n += 1
                os.replace(chained, f"{chained}.{n}")
            os.replace(path, chained)
    tmp = path + ".theta-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(HOOK)
    os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, path)
    return path
