"""End to end: bad input fails with one clear line, a non-zero exit, and nothing half-written."""

import os
import pickle
import shutil
import subprocess

import torch

from tests.helpers import commit_tracked_model, save, small_model


def test_corrupt_checkpoint_is_refused_and_index_untouched(repo):
    path = commit_tracked_model(repo, small_model(), message="v1")
    head_blob = repo.out("rev-parse", ":model.pt")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated
    proc = repo("add", "model.pt", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "git-theta: model.pt:" in err and "Traceback" not in err
    assert repo.out("rev-parse", ":model.pt") == head_blob
    tmp = os.path.join(repo.cwd, ".git", "lfs", "tmp")
    assert not os.path.isdir(tmp) or not os.listdir(tmp)


def test_not_a_checkpoint(repo):
    repo.theta("track", "notes.pt")
    with open(os.path.join(repo.cwd, "notes.pt"), "w") as f:
        f.write("just some text\n")
    proc = repo("add", "notes.pt", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "git-theta: notes.pt: not a PyTorch checkpoint" in err and "git theta untrack" in err
    with open(os.path.join(repo.cwd, "notes.pt"), "wb") as f:
        f.write(b"\x00" * 100)
    repo.theta("track", "blob.bin2")
    with open(os.path.join(repo.cwd, "blob.bin2"), "wb") as f:
        f.write(b"\x00" * 100)
    err = repo("add", "blob.bin2", check=False).stderr.decode()
    assert "blob.bin2: not a recognized checkpoint" in err


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_that_runs_code_is_refused(repo):
    repo.theta("track", "evil.pt")
    path = os.path.join(repo.cwd, "evil.pt")
    torch.save({"w": torch.ones(2), "x": Evil()}, path)
    proc = repo("add", "evil.pt", check=False)
    assert proc.returncode != 0
    assert "refusing to load" in proc.stderr.decode()
    assert not os.path.exists(os.path.join(repo.cwd, "pwned"))
    legacy = os.path.join(repo.cwd, "evil.pt")
    with open(legacy, "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    assert repo("add", "evil.pt", check=False).returncode != 0
    assert not os.path.exists(os.path.join(repo.cwd, "pwned"))


def test_missing_lfs_object_on_checkout(repo, tmp_path):
    path = commit_tracked_model(repo, small_model(), message="v1")
    shutil.rmtree(os.path.join(repo.cwd, ".git", "lfs", "objects"))
    os.remove(path)
    proc = repo("checkout", "--", "model.pt", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "missing locally and could not be fetched" in err and "Traceback" not in err


def test_corrupt_lfs_object_is_detected(repo):
    path = commit_tracked_model(repo, small_model(), message="v1")
    root = os.path.join(repo.cwd, ".git", "lfs", "objects")
    victim = next(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
    os.chmod(victim, 0o644)
    with open(victim, "r+b") as f:
        f.seek(10)
        f.write(b"\xff\xff\xff")
    os.remove(path)
    proc = repo("checkout", "--", "model.pt", check=False)
    assert proc.returncode != 0
    assert "corrupt" in proc.stderr.decode() and "parameter" in proc.stderr.decode()
    save(small_model(1), path)
    repo("add", "model.pt")
    repo("commit", "-qm", "v2")
    proc = repo("checkout", "-q", "HEAD~1", check=False)  # git names the commit it checks out
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "corrupt" in err and "parameter" in err
    assert repo.out("rev-parse", "HEAD~1").strip()[:12] in err


def test_not_a_repository(tmp_path, git_env):
    proc = subprocess.run(["git", "theta", "track", "x.pt"], cwd=tmp_path, env=git_env, capture_output=True)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip().startswith("git-theta: error: not a git repository")


def test_install_refuses_without_git_lfs(tmp_path, git_env):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(shutil.which("git"), bindir / "git")
    env = dict(git_env, PATH=str(bindir))
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "git_theta.cli", "install"], env=env, capture_output=True, cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "git-lfs is not installed" in proc.stderr.decode()


def test_unknown_checkpoint_type_setting(repo):
    repo.theta("track", "model.pt")
    save(small_model(), os.path.join(repo.cwd, "model.pt"))
    env = dict(repo.env, GIT_THETA_CHECKPOINT_TYPE="nonsense")
    proc = type(repo)(repo.cwd, env)("add", "model.pt", check=False)
    assert proc.returncode != 0
    assert "unknown checkpoint type 'nonsense'" in proc.stderr.decode()


def test_wrong_flag_is_a_usage_error(repo):
    proc = repo.theta("install", "--scope", "planet", check=False)
    assert proc.returncode == 2
    assert "Invalid value for '--scope'" in proc.stderr.decode()


def test_settings_from_git_config(repo):
    repo.theta("track", "model.pt")
    save(small_model(), os.path.join(repo.cwd, "model.pt"))
    repo("config", "theta.checkpointType", "safetensors")
    proc = repo("add", "model.pt", check=False)
    assert proc.returncode != 0 and "safetensors" in proc.stderr.decode()
    repo("config", "theta.checkpointType", "pickled-dict")  # the original's name for torch files
    repo("add", "model.pt")


def test_stale_index_lock_is_named_at_once(repo):
    """A stale .git/index.lock: `git theta add` says at once what it waits for, then fails naming it."""
    import time

    path = commit_tracked_model(repo, small_model(), message="v1")
    save(small_model(1), path)
    lock = os.path.join(repo.cwd, ".git", "index.lock")
    open(lock, "w").close()
    env = dict(repo.env, GIT_THETA_LOCK_TIMEOUT="10")
    start = time.monotonic()
    proc = subprocess.Popen(
        ["git", "theta", "add", "model.pt"], cwd=repo.cwd, env=env, stderr=subprocess.PIPE, text=True
    )
    first = proc.stderr.readline()
    waited = time.monotonic() - start
    rest = proc.communicate(timeout=60)[1]
    assert waited < 6 and "waiting for" in first and lock in first and "remove that file" in first
    assert proc.returncode != 0 and time.monotonic() - start >= 10
    assert f"git-theta: error: {lock} still exists after 10 s" in rest and "remove that file" in rest
    assert "Traceback" not in rest and os.path.exists(lock)
