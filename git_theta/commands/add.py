"""`git theta add`: `git add` with a chosen update type, re-running the filter even if unchanged."""

import os
import subprocess

from git_theta import config, plugins
from git_theta.errors import ThetaError


def add(paths: list[str], update_type: str | None, update_data: str | None, git_args: list[str]) -> int:
    """Stage `paths` through git with GIT_THETA_UPDATE_TYPE / _DATA_PATH set for the filter."""
    env = dict(os.environ)
    update = plugins.updates.get(
        update_type or config.get("update_type") or "dense"
    )  # clear error if unknown
    if update_type:
        env["GIT_THETA_UPDATE_TYPE"] = update_type
    if update_data:
        if not update.takes_side_data:
            takers = [c.name for c in plugins.updates.classes() if c.takes_side_data]
            raise ThetaError(
                f"update type {update.name!r} takes no side data; choose one that does with --update-type "
                f"({', '.join(takers) or 'none installed'})"
            )
        if not os.path.exists(update_data):
            raise ThetaError(f"{update_data}: update data file not found")
        env["GIT_THETA_UPDATE_DATA_PATH"] = os.path.abspath(update_data)
    for path in paths:
        if not os.path.exists(path):
            raise ThetaError(f"{path}: no such file")
        os.utime(path)  # a new mtime makes git run the clean filter again
    return subprocess.run(["git", "add", *git_args, "--", *paths], env=env).returncode
