"""Every error path a user meets, with the real thing: a full disk (a small tmpfs), a read-only
store (a read-only bind mount), git-lfs missing, objects missing locally and on the remote."""

import contextlib
import hashlib
import os
import shutil
import subprocess

import pytest
import torch

from git_theta.git import programs
from tests.helpers import assert_same_state, commit_tracked_model, load, save


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def mounted(target: str, *args: str):
    """Mount something on `target` for the block; the test is skipped where mounting is not allowed."""
    os.makedirs(target, exist_ok=True)
    if not _mount(*args, target):
        pytest.skip("mount is not permitted here (needs root in a machine that allows it)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", target], capture_output=True)


def _big(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {f"w{i}": torch.randn(1000, 1000, generator=g) for i in range(4)}  # 16 MB


def _objects_ok(lfs: str) -> bool:
    for root, _, files in os.walk(os.path.join(lfs, "objects")):
        for f in files:
            if hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest() != f:
                return False
    return True


def test_disk_full_while_adding(repo):
    repo.theta("track", "model.pt")
    lfs = os.path.join(repo.cwd, ".git", "lfs")
    with mounted(lfs, "-t", "tmpfs", "-o", "size=4m", "tmpfs"):
        save(_big(0), os.path.join(repo.cwd, "model.pt"))
        proc = repo("add", "model.pt", check=False)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "no space left" in err and "Traceback" not in err
        assert repo.out("diff", "--cached", "--name-only").strip() == ".gitattributes"  # nothing staged
        assert _objects_ok(lfs)  # what landed is whole; the temp files were removed
        tmp = os.path.join(lfs, "tmp")
        assert not os.path.isdir(tmp) or not os.listdir(tmp)  # no temp file left behind
    repo("add", "model.pt")  # with space again, the same command works
    repo("commit", "-qm", "v1")
    os.remove(os.path.join(repo.cwd, "model.pt"))
    repo("checkout", "--", "model.pt")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), _big(0))


def test_read_only_store_checks_out_but_refuses_to_add(repo):
    path = commit_tracked_model(repo, _big(0), message="v1")
    objects = os.path.join(repo.cwd, ".git", "lfs", "objects")
    with mounted(objects, "--bind", objects):
        if not _mount("-o", "remount,ro,bind", objects):
            pytest.skip("read-only remount is not permitted here")
        os.remove(path)
        repo("checkout", "--", "model.pt")  # reading needs no write
        assert_same_state(load(path), _big(0))
        save(_big(1), path)
        proc = repo("add", "model.pt", check=False)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "read-only file system" in err and "Traceback" not in err
    assert repo.status().strip() == "M model.pt"


def test_git_lfs_missing_when_objects_must_be_fetched(repo, bare_remote, tmp_path):
    commit_tracked_model(repo, _big(0), message="v1")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "clone")
    env = dict(repo.env, GIT_THETA_SKIP_SMUDGE="1")
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=env, check=True, capture_output=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("git", "sh"):
        os.symlink(shutil.which(tool), bindir / tool)
    no_lfs = dict(repo.env, PATH=f"{bindir}{os.pathsep}{programs.scripts_dir()}")
    assert shutil.which("git-lfs", path=no_lfs["PATH"]) is None
    # an LFS URL of its own: only git-lfs can reach it
    subprocess.run(["git", "config", "lfs.url", "https://lfs.invalid/repo"], cwd=clone, check=True)
    proc = subprocess.run(["git", "theta", "checkout-models"], cwd=clone, env=no_lfs, capture_output=True)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "git-lfs" in err and "Traceback" not in err
    assert open(os.path.join(clone, "model.pt"), "rb").read(1) == b"{"  # the metadata, untouched
    # the remote itself is a repository on this machine: its objects are linked, no git-lfs needed
    subprocess.run(["git", "config", "--unset", "lfs.url"], cwd=clone, check=True)
    proc = subprocess.run(["git", "theta", "checkout-models"], cwd=clone, env=no_lfs, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert open(os.path.join(clone, "model.pt"), "rb").read(1) != b"{"


def test_objects_missing_locally_and_on_the_remote(repo, bare_remote, tmp_path):
    commit_tracked_model(repo, _big(0), message="v1")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    shutil.rmtree(os.path.join(bare_remote, "lfs", "objects"))  # the remote lost them
    clone = str(tmp_path / "clone")
    env = dict(repo.env, GIT_THETA_FETCH_RETRIES="0")
    proc = subprocess.run(["git", "clone", "-q", bare_remote, clone], env=env, capture_output=True)
    err = proc.stderr.decode()
    assert "model.pt" in err and "could not be fetched" in err and "Traceback" not in err
    c = repo.at(clone)
    c.env = env
    r = c("checkout", "-q", "-f", "HEAD", check=False)
    assert r.returncode != 0 and "could not be fetched" in r.stderr.decode()
    assert (
        not os.path.exists(os.path.join(clone, "model.pt"))
        or open(os.path.join(clone, "model.pt"), "rb").read(1) != b"P"
    )  # never a partial checkpoint
