"""Registering git-theta with git: the theta filter, diff and merge drivers in git config, and its
hooks (what `git theta install` writes, and what tracking a file sets up when it is missing)."""

import subprocess

from git_theta.errors import ThetaError
from git_theta.git import hooks, programs, repo

SCOPES = {
    "global": "--global",
    "user": "--global",
    "system": "--system",
    "repository": "--local",
    "local": "--local",
}


def config_values() -> dict[str, str]:
    """The git config that routes tracked files through this installation's programs (by
    absolute path when PATH alone would not find them: see git.programs)."""
    flt, diff, merge = (
        programs.command(p) for p in ("git-theta-filter", "git-theta-diff", "git-theta-merge")
    )
    return {
        "filter.theta.clean": f"{flt} clean %f",
        "filter.theta.smudge": f"{flt} smudge %f",
        "filter.theta.process": f"{flt} process",
        "filter.theta.required": "true",
        "diff.theta.command": diff,
        "diff.theta.textconv": f"{diff} --textconv",
        "merge.theta.name": "Merge models parameter by parameter with git-theta",
        "merge.theta.driver": f"{merge} %O %A %B %P",
    }


def is_installed(cwd: str | None = None) -> bool:
    """Whether git-theta's filter is registered in the git config `cwd` sees."""
    return repo.config_get("filter.theta.process", cwd) is not None


def install(scope: str = "global", cwd: str | None = None) -> int:
    """Write config_values() at `scope` (idempotent); in a repository also install our hooks."""
    repo.require_lfs()
    flag = SCOPES[scope]
    if flag == "--local":
        repo.root(cwd)
    for key, value in config_values().items():
        proc = subprocess.run(["git", "config", flag, key, value], cwd=cwd, capture_output=True)
        if proc.returncode != 0:
            msg = proc.stderr.decode("utf-8", "replace").strip()
            raise ThetaError(f"could not write git config {key} at {scope} scope: {msg}")
    in_repo = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=cwd, capture_output=True).returncode == 0
    if in_repo:
        hooks.install_hooks(cwd)
    return 0
