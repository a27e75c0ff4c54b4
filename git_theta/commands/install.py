"""`git theta install`: register the theta filter, diff and merge drivers in git config."""

import subprocess

from git_theta.errors import ThetaError
from git_theta.git import hooks, repo

SCOPES = {
    "global": "--global",
    "user": "--global",
    "system": "--system",
    "repository": "--local",
    "local": "--local",
}

CONFIG = {
    "filter.theta.clean": "git-theta-filter clean %f",
    "filter.theta.smudge": "git-theta-filter smudge %f",
    "filter.theta.process": "git-theta-filter process",
    "filter.theta.required": "true",
    "diff.theta.command": "git-theta-diff",
    "diff.theta.textconv": "git-theta-diff --textconv",
    "merge.theta.name": "Merge models parameter by parameter with git-theta",
    "merge.theta.driver": "git-theta-merge %O %A %B %P",
}


def is_installed(cwd: str | None = None) -> bool:
    return repo.config_get("filter.theta.process", cwd) is not None


def install(scope: str = "global", cwd: str | None = None) -> int:
    """Write CONFIG at `scope` (idempotent); in a repository also install the pre-push hook."""
    repo.require_lfs()
    flag = SCOPES[scope]
    if flag == "--local":
        repo.root(cwd)
    for key, value in CONFIG.items():
        proc = subprocess.run(["git", "config", flag, key, value], cwd=cwd, capture_output=True)
        if proc.returncode != 0:
            msg = proc.stderr.decode("utf-8", "replace").strip()
            raise ThetaError(f"could not write git config {key} at {scope} scope: {msg}")
    in_repo = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=cwd, capture_output=True).returncode == 0
    if in_repo:
        hooks.install_hooks(cwd)
    return 0
