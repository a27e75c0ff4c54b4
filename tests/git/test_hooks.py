"""The pre-push hook: installed idempotently, chained with the user's own, never overwriting it."""

import os
import stat
import subprocess

from git_theta.git import hooks


def test_user_hook_is_kept_and_chained(repo, bare_remote):
    hook_dir = os.path.join(repo.cwd, ".git", "hooks")
    os.makedirs(hook_dir, exist_ok=True)
    user_hook = os.path.join(hook_dir, "pre-push")
    with open(user_hook, "w") as f:
        f.write(
            '#!/bin/sh\ncat > "$(dirname "$0")/../user-hook-ran"\necho "$1" >> "$(dirname "$0")/../user-hook-ran"\n'
        )
    os.chmod(user_hook, 0o755)
    repo.theta("track", "model.pt")
    assert hooks.MARKER in open(user_hook).read()
    chained = os.path.join(hook_dir, hooks.CHAINED)
    assert "user-hook-ran" in open(chained).read()
    hooks.install_pre_push(repo.cwd)  # idempotent: the chained hook is not replaced by ours
    assert "user-hook-ran" in open(chained).read()
    with open(os.path.join(repo.cwd, "a.txt"), "w") as f:
        f.write("x")
    repo("add", "-A")
    repo("commit", "-qm", "a")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    ran = open(os.path.join(repo.cwd, ".git", "user-hook-ran")).read()
    assert "refs/heads/main" in ran and ran.strip().endswith("origin")


def test_failing_user_hook_still_blocks_the_push(repo, bare_remote):
    hook_dir = os.path.join(repo.cwd, ".git", "hooks")
    os.makedirs(hook_dir, exist_ok=True)
    with open(os.path.join(hook_dir, "pre-push"), "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    os.chmod(os.path.join(hook_dir, "pre-push"), stat.S_IRWXU)
    repo.theta("track", "model.pt")
    repo("commit", "-qm", "attrs")
    repo("remote", "add", "origin", bare_remote)
    assert repo("push", "-q", "origin", "main", check=False).returncode != 0


def test_hook_in_fresh_clone_after_checkout(repo, bare_remote, tmp_path):
    repo.theta("track", "model.pt")
    import torch

    torch.save({"w": torch.ones(3)}, os.path.join(repo.cwd, "model.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "m")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "c")
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=repo.env, check=True)
    assert hooks.MARKER in open(os.path.join(clone, ".git", "hooks", "pre-push")).read()
