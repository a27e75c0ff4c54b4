"""`git theta add`: `git add` with a chosen update type, re-running the filter even if unchanged.

When the stored values differ from the working file (side-loaded updates, or an approximating
update type), the working file is then checked out again from the index, so it holds exactly
what was committed and `git status` is clean.
"""

import os
import subprocess

from git_theta import config, plugins
from git_theta.errors import ThetaError
from git_theta.git import attributes, repo
from git_theta.git.commit import index_turn
from git_theta.logs import get_logger
from git_theta.setup_check import require_filter
from git_theta.storage import objects_lock

log = get_logger(__name__)
_NO_WRITE_FLAGS = {"-n", "--dry-run", "-N", "--intent-to-add", "-p", "--patch", "-i", "--interactive"}


def add(paths: list[str], update_type: str | None, update_data: str | None, git_args: list[str]) -> int:
    """Stage `paths` through git with GIT_THETA_UPDATE_TYPE / _DATA_PATH set for the filter."""
    env = dict(os.environ)
    update = plugins.updates.get(
        update_type or config.get("update_type") or "auto"
    )()  # clear error if unknown
    if update_type:
        env["GIT_THETA_UPDATE_TYPE"] = update.name
    if update_data:
        if not update.takes_side_data:
            takers = [c.name for c in plugins.updates.classes() if c.takes_side_data]
            raise ThetaError(
                f"update type {update.name!r} takes no side data; choose one that does with --update-type "
                f"({', '.join(takers) or 'none installed'})"
            )
        if not os.path.isfile(update_data):
            raise ThetaError(f"{update_data}: update data file not found")
        env["GIT_THETA_UPDATE_DATA_PATH"] = os.path.abspath(update_data)
    else:
        env.pop("GIT_THETA_UPDATE_DATA_PATH", None)
    if not paths:
        raise ThetaError("nothing to add: name the checkpoint(s) to stage")
    for path in paths:
        if not os.path.exists(path):
            raise ThetaError(f"{path}: no such file")
    require_filter(repo.root(), _tracked(paths))
    with objects_lock.writing(), index_turn():  # prune waits until the index records the tensors
        for path in paths:
            os.utime(path)  # a new mtime makes git run the clean filter again
        code = subprocess.run(["git", "add", *git_args, "--", *paths], env=env).returncode
        if code != 0 or _NO_WRITE_FLAGS.intersection(git_args):
            return code
        return _rewrite_if_needed(paths, update, update_data)


def _tracked(paths: list[str]) -> list[str]:
    """The files (relative to the repository root) git-theta tracks among `paths` (files or
    folders); ThetaError naming the `git theta track` fix for a path that covers none, which
    `git add` would stage raw."""
    top = repo.root()
    out = []
    for path in paths:
        if os.path.isdir(path):
            listed = [
                "ls-files",
                "-z",
                "--full-name",
                "--cached",
                "--others",
                "--exclude-standard",
                "--",
                path,
            ]
            names = [n.decode() for n in repo.run(listed).split(b"\0") if n]
        else:
            names = [os.path.relpath(os.path.abspath(path), top).replace(os.sep, "/")]
        tracked = attributes.tracked_paths(names, top)
        if not tracked:
            raise ThetaError(
                f"not tracked by git-theta, so `git theta add` would stage it raw; "
                f"run `git theta track {path}` first (or `git add {path}` to store it raw)",
                path,
            )
        out += tracked
    return out


def _rewrite_if_needed(paths: list[str], update, update_data: str | None) -> int:
    if update_data or not update.exact:
        log.info("rewriting %s to the stored values", ", ".join(paths))
        files = [p for p in paths if os.path.isfile(p)]
        for path in files:
            # git skips index entries whose stat matches the file, and `git add` just recorded the
            # file as it is: an older mtime makes every file differ so checkout rewrites it
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 2_000_000_000))
        code = subprocess.run(["git", "checkout", "--", *files]).returncode
        if code != 0:
            raise ThetaError(
                f"staged, but rewriting {', '.join(files)} to the stored values failed; run `git checkout -- FILE`"
            )
    return 0
