"""The training-loop examples and framework callbacks, run as users run them, in a real repo."""

import importlib.util
import os
import subprocess
import sys

import pytest

import git_theta

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.fixture
def train_repo(repo, monkeypatch):
    for key, value in repo.env.items():
        monkeypatch.setenv(key, value)
    repo("commit", "-q", "--allow-empty", "-m", "init")
    return repo


def needs(*names: str) -> None:
    """Skip unless the packages are installed, without importing them here: the examples import
    them in their own process, and lightning's import pulls in triton, which crashes a process
    that imported TensorFlow before (tensorflow-cpu 2.21 and triton 3.7: a segmentation fault)."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


def run_example(repo, name, *args):
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), *args], cwd=repo.cwd, env=repo.env, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stdout.decode()


def test_plain_training_loop_example(train_repo):
    out = run_example(train_repo, "train_loop.py", "--steps", "4")
    assert "first version loaded back" in out
    assert [v.message.split(":")[0] for v in git_theta.log("model.pt", repo=train_repo.cwd)] == [
        "step 3", "step 2", "step 1", "step 0"
    ]  # fmt: skip
    assert train_repo.status() == ""


def test_transformers_trainer_callback(train_repo):
    needs("transformers")
    needs("accelerate")
    run_example(train_repo, "hf_trainer.py", "--steps", "3")
    versions = git_theta.log("model.safetensors", repo=train_repo.cwd)
    assert [v.message for v in versions] == ["step 3", "step 2", "step 1"]
    state = git_theta.load("model.safetensors", repo=train_repo.cwd)
    assert "transformer.h.0.attn.c_attn.weight" in state
    assert train_repo.status() == ""


def test_lightning_callback(train_repo):
    needs("lightning")
    run_example(train_repo, "lightning_train.py", "--epochs", "2")
    versions = git_theta.log("model.pt", repo=train_repo.cwd)
    assert [v.message for v in versions] == ["epoch 1 step 8", "epoch 0 step 4"]
    assert set(git_theta.load("model.pt", repo=train_repo.cwd)) == {
        "net.0.weight",
        "net.0.bias",
        "net.2.weight",
        "net.2.bias",
    }
