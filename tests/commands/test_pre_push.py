"""The pre-push hook (commands.pre_push), through a real `git push`."""

import hashlib
import os
import subprocess

import numpy as np
from safetensors.numpy import save_file

from tests.helpers import push_and_clone


def _save(path: str, seed: int) -> str:
    rng = np.random.default_rng(seed)
    save_file({f"w{i}": rng.standard_normal((32, 32)).astype(np.float32) for i in range(3)}, path)
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_force_push_over_a_commit_we_never_fetched_uploads_our_objects(repo, bare_remote, tmp_path):
    repo.theta("track", "*.safetensors")
    path = os.path.join(repo.cwd, "m.safetensors")
    _save(path, 0)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    other = repo.at(push_and_clone(repo, bare_remote, str(tmp_path / "other")))
    _save(os.path.join(other.cwd, "m.safetensors"), 1)
    other("commit", "-qam", "theirs")
    other("push", "-q", "origin", "main")  # the remote's main is now a commit this repo never saw
    ours = _save(path, 2)
    repo("commit", "-qam", "ours")
    repo("push", "-q", "--force", "origin", "main")
    fresh = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", bare_remote, str(fresh)], env=repo.env, check=True)
    assert hashlib.sha256(open(fresh / "m.safetensors", "rb").read()).hexdigest() == ours


def test_the_hook_imports_nothing_that_only_costs_start_up(repo, bare_remote):
    """dataclasses (with inspect), typing, shutil, click, numpy and logging: ~20 ms of every push
    together, which Git LFS's Go hook does not pay (git_theta.dtypes). Read from the real hook's
    own import log (PYTHONPROFILEIMPORTTIME)."""
    repo.theta("track", "*.safetensors")
    _save(os.path.join(repo.cwd, "m.safetensors"), 0)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    repo("remote", "add", "origin", bare_remote)
    repo.env["PYTHONPROFILEIMPORTTIME"] = "1"
    try:
        log = repo("push", "-q", "origin", "main").stderr.decode()
    finally:
        del repo.env["PYTHONPROFILEIMPORTTIME"]
    loaded = {line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")}
    assert {"git_theta.commands.pre_push", "git_theta.metadata", "json"} <= loaded
    assert not loaded & {"dataclasses", "inspect", "typing", "shutil", "click", "numpy", "logging"}
