"""Low-memory mode: the filter leaves large checkpoints as metadata and the hooks write them to
disk tensor by tensor; spilled input pages are released as tensors are done."""

import hashlib
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import save_file

from git_theta.git import hooks
from tests.helpers import push_and_clone


def _model(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {f"layer{i}.weight": rng.standard_normal((64, 64)).astype(np.float32) for i in range(6)}


def _sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def low(repo):
    repo.env["GIT_THETA_LOW_MEMORY"] = "1"
    repo.theta("track", "*.safetensors")
    return repo


def _first_version(low) -> tuple[str, str]:
    """Commit model 0 as m.safetensors; (its path, the file's sha256)."""
    path = os.path.join(low.cwd, "m.safetensors")
    save_file(_model(0), path)
    low("add", "-A")
    low("commit", "-qm", "v1")
    return path, _sha(path)


def test_checkout_is_written_by_the_hook_bit_exact(low, tmp_path):
    path, first = _first_version(low)
    save_file(_model(1), path)
    second = _sha(path)
    low("commit", "-qam", "v2")
    done = low("checkout", "-q", "HEAD~1")
    assert "low-memory mode" in done.stderr.decode()
    assert _sha(path) == first  # the post-checkout hook wrote the checkpoint, not metadata
    assert low.status() == ""
    low("checkout", "-q", "main")
    assert _sha(path) == second and low.status() == ""
    assert not open(os.path.join(low.cwd, ".git", hooks.PENDING)).read()


def test_fresh_clone_and_pull_write_models(low, bare_remote, tmp_path):
    path, _ = _first_version(low)
    clone = push_and_clone(low, bare_remote, str(tmp_path / "clone"))
    assert _sha(os.path.join(clone, "m.safetensors")) == _sha(path)  # hooks installed during the clone ran
    save_file(_model(2), path)
    low("commit", "-qam", "v2")
    low("push", "-q", "origin", "main")
    c = low.at(clone)
    c("pull", "-q", "--ff-only", "origin", "main")  # post-merge
    assert _sha(os.path.join(clone, "m.safetensors")) == _sha(path)
    assert c.status() == ""


def test_failed_deferred_write_keeps_the_note_and_the_metadata(low, tmp_path):
    path, want = _first_version(low)
    os.remove(path)
    store = os.path.join(low.cwd, ".git", "lfs", "objects")
    moved = str(tmp_path / "objects")
    os.rename(store, moved)  # objects gone and no remote: the write must fail cleanly
    r = low("checkout", "--", "m.safetensors", check=False)
    assert r.returncode != 0 and "missing" in r.stderr.decode()
    assert open(path, "rb").read().startswith(b"{")  # still the metadata, not a partial checkpoint
    assert "m.safetensors" in open(os.path.join(low.cwd, ".git", hooks.PENDING)).read()
    assert not [f for f in os.listdir(low.cwd) if f.startswith(".theta-")]
    shutil.rmtree(store, ignore_errors=True)
    os.rename(moved, store)
    low.theta("checkout-models", "--pending")
    assert _sha(path) == want and low.status() == ""


def test_a_linked_worktree_gets_its_models_written_too(low, tmp_path):
    path, first = _first_version(low)
    save_file(_model(1), path)
    low("commit", "-qam", "v2")
    other = str(tmp_path / "other")  # .git there is a file: the hook asks git where its note is
    low("worktree", "add", "-q", other, "HEAD~1")
    assert _sha(os.path.join(other, "m.safetensors")) == first
    low.at(other)("checkout", "-q", "--detach", "main")
    assert _sha(os.path.join(other, "m.safetensors")) == _sha(path)
    assert low.at(other).status() == "" and low.status() == ""
