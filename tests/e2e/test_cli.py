"""End to end: the `git theta` commands as a user types them."""

import os
import subprocess

import pytest
import torch

import git_theta
from git_theta.git.install import config_values
from tests.conftest import Git
from tests.helpers import assert_same_state, load, save, small_model


def test_install_is_idempotent_at_each_scope(repo):
    for _ in range(2):
        repo.theta("install")
        repo.theta("install", "--scope", "repository")
    for key, value in config_values().items():
        assert repo.out("config", "--global", "--get-all", key).splitlines() == [value]
        assert repo.out("config", "--local", "--get-all", key).splitlines() == [value]


def test_track_without_prior_install_installs_at_repository_scope(tmp_path, git_env):
    env = dict(git_env, HOME=str(tmp_path / "other-home"))
    os.makedirs(env["HOME"])
    subprocess.run(["git", "config", "--global", "user.name", "x"], env=env, check=True)
    subprocess.run(["git", "config", "--global", "user.email", "x@x"], env=env, check=True)
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], env=env, check=True)
    g = Git(str(tmp_path / "r"), env)
    g.theta("track", "model.pt")
    assert (
        g.out("config", "--local", "filter.theta.process").strip() == config_values()["filter.theta.process"]
    )
    save(small_model(), os.path.join(g.cwd, "model.pt"))
    g("add", "model.pt")
    g("commit", "-qm", "m")
    assert g.out("show", "HEAD:model.pt").startswith("{")


def test_track_twice_ls_files_untrack(repo):
    out = repo.theta("track", "model.pt").stdout.decode()
    assert "Tracking 'model.pt'" in out
    repo.theta("track", "model.pt")
    repo.theta("track", "my model.pt")
    attrs = open(os.path.join(repo.cwd, ".gitattributes")).read().splitlines()
    assert attrs == [
        "model.pt filter=theta diff=theta merge=theta -text",
        "my[[:space:]]model.pt filter=theta diff=theta merge=theta -text",
    ]
    assert ".gitattributes" in repo.out("diff", "--cached", "--name-only")
    save(small_model(), os.path.join(repo.cwd, "model.pt"))
    save(small_model(1), os.path.join(repo.cwd, "my model.pt"))
    with open(os.path.join(repo.cwd, "readme.txt"), "w") as f:
        f.write("hi\n")
    repo("add", "-A")
    assert repo.theta("ls-files").stdout.decode().splitlines() == ["model.pt", "my model.pt"]
    repo.theta("untrack", "my model.pt")
    assert "my[[:space:]]model.pt" not in open(os.path.join(repo.cwd, ".gitattributes")).read()


def test_theta_add_restages_and_checks_update_type(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    save(small_model(), path)
    repo.theta("add", "model.pt", "--update-type", "dense")
    assert "model.pt" in repo.out("diff", "--cached", "--name-only")
    bad = repo.theta("add", "model.pt", "--update-type", "bogus", check=False)
    assert bad.returncode == 1 and "unknown update type 'bogus'" in bad.stderr.decode()
    side = repo.theta("add", "model.pt", "--update-data", "model.pt", check=False)
    assert side.returncode == 1 and "update type 'auto' takes no side data" in side.stderr.decode()
    missing = repo.theta("add", "nope.pt", check=False)
    assert missing.returncode == 1 and "nope.pt: no such file" in missing.stderr.decode()


@pytest.mark.parametrize("flags", [(), ("--update-type", "sparse")])
def test_theta_add_refuses_a_file_git_theta_does_not_track(repo, flags):
    repo.theta("track", "model.pt")
    os.makedirs(os.path.join(repo.cwd, "sub"))
    save(small_model(), os.path.join(repo.cwd, "sub", "other.pt"))
    for path in ("sub/other.pt", "sub"):
        proc = repo.theta("add", path, *flags, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and len(err.splitlines()) == 1, err
        assert f"{path}: not tracked by git-theta" in err and f"`git theta track {path}`" in err
    assert repo.out("diff", "--cached", "--name-only").split() == [".gitattributes"]
    save(small_model(), os.path.join(repo.cwd, "model.pt"))
    repo.theta("add", ".", *flags)  # a folder holding a tracked checkpoint is fine
    assert repo.out("show", ":model.pt").startswith("{")


def test_save_to_git_and_load_from_git(repo, monkeypatch):
    monkeypatch.setenv("HOME", repo.env["HOME"])
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(repo.cwd)
    v1, v2 = small_model(0), small_model(1)
    path = os.path.join(repo.cwd, "model.pt")
    c1 = git_theta.save_to_git(v1, path, "first", tag="v1")
    c2 = git_theta.save_to_git(v2, path, "second")
    assert c1.hexsha != c2.hexsha and c2.message.strip() == "second"
    assert not os.path.exists(path)  # nothing written to the working tree by default
    assert_same_state(git_theta.load_from_git("v1", path), v1)
    assert_same_state(git_theta.load_from_git(c2.hexsha, path), v2)
    git_theta.load_from_git("v1", path, checkout=True)
    assert_same_state(load(path), v1)
    c3 = git_theta.save_to_git(v1, path, "third", checkout=True)
    assert_same_state(load(path), v1)
    assert repo.status() == ""
    assert c3.hexsha == repo.out("rev-parse", "HEAD").strip()


def test_git_lfs_own_hook_still_pushes_lfs_files(repo, bare_remote, tmp_path):
    subprocess.run(
        ["git", "lfs", "install", "--local"], cwd=repo.cwd, env=repo.env, check=True, capture_output=True
    )
    repo("lfs", "track", "*.bin")
    repo.theta("track", "model.pt")
    with open(os.path.join(repo.cwd, "data.bin"), "wb") as f:
        f.write(os.urandom(1000))
    torch.save({"w": torch.randn(10)}, os.path.join(repo.cwd, "model.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "both")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "c")
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=repo.env, check=True)
    assert (
        open(os.path.join(clone, "data.bin"), "rb").read()
        == open(os.path.join(repo.cwd, "data.bin"), "rb").read()
    )
    assert torch.equal(
        torch.load(os.path.join(clone, "model.pt"))["w"], torch.load(os.path.join(repo.cwd, "model.pt"))["w"]
    )


def test_merge_of_disjoint_changes(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    base = small_model()
    save(base, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "a")
    ours = type(base)(base)
    ours["layers.0.weight"] = base["layers.0.weight"] + 1
    save(ours, path)
    repo("commit", "-qam", "a")
    repo("switch", "-q", "main")
    theirs = type(base)(base)
    theirs["head.weight"] = base["head.weight"] * 3
    save(theirs, path)
    repo("commit", "-qam", "b")
    repo("merge", "-q", "--no-edit", "a")
    merged = load(path)
    assert torch.equal(merged["layers.0.weight"], ours["layers.0.weight"])
    assert torch.equal(merged["head.weight"], theirs["head.weight"])
    assert repo.status() == ""
    # both sides change the same parameter: a listed conflict, no silent choice
    repo("switch", "-q", "-c", "c")
    x = load(path)
    x["head.weight"] = x["head.weight"] + 5
    save(x, path)
    repo("commit", "-qam", "c")
    repo("switch", "-q", "main")
    y = load(path)
    y["head.weight"] = y["head.weight"] - 5
    save(y, path)
    repo("commit", "-qam", "d")
    proc = repo("merge", "--no-edit", "c", check=False)
    assert proc.returncode != 0
    assert "head.weight" in proc.stderr.decode() + proc.stdout.decode()


def test_track_converts_a_file_committed_raw(repo):
    os.makedirs(os.path.join(repo.cwd, "sub"))
    path = os.path.join(repo.cwd, "sub", "model.safetensors")
    save(small_model(), path)
    with open(path, "rb") as f:
        raw = f.read()
    repo("add", "-A")
    repo("commit", "-qm", "raw")
    out = repo.theta("track", "model.safetensors", cwd=os.path.join(repo.cwd, "sub")).stdout.decode()
    assert (
        "sub/model.safetensors was committed raw: staged it through git-theta (git add --renormalize)" in out
    )
    repo("commit", "-qm", "through git-theta")
    assert repo.out("show", "HEAD:sub/model.safetensors").startswith(
        '{\n "README": "This is git-theta metadata'
    )
    assert repo.status() == ""
    os.remove(path)
    repo("checkout", "--", "sub/model.safetensors")
    with open(path, "rb") as f:
        assert f.read() == raw
    assert "committed raw" not in repo.theta("track", "sub/model.safetensors").stdout.decode()  # once only
