"""`git theta install` (git_theta.git.install): git config at the chosen scope, and hooks in a repository."""

import os
import subprocess

from git_theta.git.install import config_values


def test_repository_scope_writes_each_value_once_and_installs_hooks(repo):
    for _ in range(2):  # idempotent
        out = repo.theta("install", "--scope", "local").stdout.decode()
        assert out.strip() == "git-theta installed (local scope)"
    for key, value in config_values().items():
        assert repo.out("config", "--local", "--get-all", key).splitlines() == [value]
    hooks = os.path.join(repo.cwd, ".git", "hooks")
    assert {"pre-push", "post-checkout", "post-merge"} <= set(os.listdir(hooks))
    assert os.access(os.path.join(hooks, "pre-push"), os.X_OK)


def test_repository_scope_outside_a_repository_is_one_line_error(git_env, tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    proc = subprocess.run(
        ["git", "theta", "install", "--scope", "local"],
        cwd=outside,
        env=dict(git_env, GIT_CEILING_DIRECTORIES=str(tmp_path)),
        capture_output=True,
    )
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and err.startswith("git-theta: error:") and len(err.splitlines()) == 1
