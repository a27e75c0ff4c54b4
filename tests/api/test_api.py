"""The Python API used the way a training loop uses it, against real repositories."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import git_theta
from git_theta.errors import ThetaError
from git_theta.metadata import Metadata
from git_theta.updates import objects_of
from tests.helpers import assert_same_state as _same_state
from tests.helpers import small_model


def assert_same_state(a, b):
    _same_state(dict(a), dict(b))


@pytest.fixture
def api_repo(repo, monkeypatch):
    """A repository with one commit; the API runs with the test's git environment."""
    for key, value in repo.env.items():
        monkeypatch.setenv(key, value)
    repo("commit", "-q", "--allow-empty", "-m", "init")
    with open(os.path.join(repo.cwd, "notes.txt"), "w") as f:
        f.write("untouched\n")
    repo("add", "notes.txt")
    repo("commit", "-qm", "notes")
    return repo


def step(sd, i):
    g = torch.Generator().manual_seed(i)
    out = type(sd)((k, v.clone()) for k, v in sd.items())
    out["layers.0.weight"] += torch.randn(out["layers.0.weight"].shape, generator=g) * 1e-3
    out["embed.weight"][i] = 0.5 * i
    return out


def test_five_versions_from_a_loop(api_repo):
    sd = small_model(0, width=32)
    versions = []
    for i in range(5):
        sd = step(sd, i)
        sha = git_theta.save(sd, "ckpt/model.pt", f"step {i}", repo=api_repo.cwd)
        versions.append((sha, sd))
    assert api_repo.out("log", "--format=%s", "-5").split("\n")[:5] == [f"step {i}" for i in range(4, -1, -1)]
    assert api_repo.status() == ""
    assert not os.path.exists(os.path.join(api_repo.cwd, "ckpt", "model.pt"))  # working tree untouched
    for k, (sha, expected) in enumerate(reversed(versions)):
        assert_same_state(git_theta.load("ckpt/model.pt", sha, repo=api_repo.cwd), expected)
        assert_same_state(git_theta.load("ckpt/model.pt", f"HEAD~{k}", repo=api_repo.cwd), expected)
    history = git_theta.log("ckpt/model.pt", repo=api_repo.cwd)
    assert [v.message for v in history] == [f"step {i}" for i in range(4, -1, -1)]
    assert history[0].modified == ["embed.weight", "layers.0.weight"] and 0 < history[0].stored_bytes
    d = git_theta.diff("HEAD~1", "HEAD", "ckpt/model.pt", repo=api_repo.cwd)
    assert d.counts["modified"] == 2 and d.changes[0].numbers.changed_fraction > 0
    # the file git checks out is a real torch checkpoint of the same tensors
    api_repo("checkout", "HEAD~2", "--", "ckpt/model.pt")
    assert_same_state(torch.load(os.path.join(api_repo.cwd, "ckpt", "model.pt")), versions[2][1])


def test_lazy_load_reads_only_the_named_parameter(api_repo):
    g = torch.Generator().manual_seed(0)  # tensors past the packing size: an object each
    sd = {n: torch.randn(640, 640, generator=g) for n in ("embed.weight", "layers.0.weight", "head.weight")}
    git_theta.save(sd, "model.pt", repo=api_repo.cwd)
    meta = Metadata.loads(api_repo.out("show", "HEAD:model.pt").encode())
    keep = set(objects_of(meta.params["head.weight"]))
    lfs = os.path.join(api_repo.cwd, ".git", "lfs", "objects")
    for root, _, files in os.walk(lfs):
        for f in files:
            if f not in keep:
                os.remove(os.path.join(root, f))  # no remote: only head.weight can be read now
    lazy = git_theta.load("model.pt", lazy=True, repo=api_repo.cwd)
    assert list(lazy) == list(sd) and torch.equal(lazy["head.weight"], sd["head.weight"])
    with pytest.raises(ThetaError, match="layers.0.weight"):
        lazy["layers.0.weight"]
    only = git_theta.load("model.pt", names=["head.weight"], repo=api_repo.cwd)
    assert list(only) == ["head.weight"]


def test_background_saves_overlap_and_finish_in_order(api_repo):
    sd = small_model(0, width=32)
    handles = []
    for i in range(3):
        sd = step(sd, i)
        expected = type(sd)((k, v.clone()) for k, v in sd.items())
        handles.append(
            (git_theta.save(sd, "model.pt", f"bg {i}", repo=api_repo.cwd, background=True), expected)
        )
        for v in sd.values():
            v.add_(100)  # the caller keeps training in place: the save holds its own copy
    shas = [h.result() for h, _ in handles]
    assert api_repo.out("log", "--format=%H", "-3").split() == list(reversed(shas))
    for (_, expected), sha in zip(handles, shas):
        assert_same_state(git_theta.load("model.pt", sha, repo=api_repo.cwd), expected)


def test_background_saves_of_large_tensors_reuse_their_copies_bit_exact(api_repo, monkeypatch):
    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", "smallest")  # every step a bit delta on the first
    g = torch.Generator().manual_seed(1)  # past the huge-page and copy-piece sizes
    sd = {"big": torch.randn(5_000_000, generator=g), "bf": torch.randn(3000, 1000, generator=g).bfloat16()}
    sd["small"] = torch.randn(10, generator=g)
    git_theta.save(sd, "model.pt", "start", repo=api_repo.cwd)
    saved = []
    for i in range(5):
        with torch.no_grad():
            for t in sd.values():
                t.mul_(1.001)  # in place, as an optimizer step
            sd["small"][i] = i
        handle = git_theta.save(sd, "model.pt", f"step {i}", repo=api_repo.cwd, background=True)
        saved.append((handle, {k: v.clone() for k, v in sd.items()}))
    for handle, expected in saved:
        assert_same_state(git_theta.load("model.pt", handle.result(), repo=api_repo.cwd), expected)
    meta = Metadata.loads(api_repo.out("show", "HEAD:model.pt").encode())
    assert meta.params["big"].update_type == "bitdelta"  # built on what the first save stored


def test_background_loop_notices_a_sparse_change_after_full_ones(api_repo):
    """After changes of every weight the saver keeps only samples of a large previous value;
    a later change of a few weights is still told apart and stored as sparse, exactly."""
    g = torch.Generator().manual_seed(2)
    sd = {"w": torch.randn(800, 1000, generator=g), "b": torch.zeros(8)}
    git_theta.save(sd, "model.pt", "start", repo=api_repo.cwd)
    saved = []
    for i in range(4):
        with torch.no_grad():
            if i < 2:
                sd["w"].mul_(1.01)  # every weight
            else:
                sd["w"][i, :5] += 1.0  # five weights
        handle = git_theta.save(sd, "model.pt", f"step {i}", repo=api_repo.cwd, background=True)
        saved.append((handle, {k: v.clone() for k, v in sd.items()}))
    kinds = []
    for handle, expected in saved:
        sha = handle.result()
        assert_same_state(git_theta.load("model.pt", sha, repo=api_repo.cwd), expected)
        kinds.append(Metadata.loads(api_repo.out("show", f"{sha}:model.pt").encode()).params["w"].update_type)
    # changes of every weight are snapshots under the bounded storage policy (a bit delta on the
    # first save would make a clone fetch both), the few-weight changes sparse on them
    assert kinds == ["dense", "dense", "sparse", "sparse"]


def test_save_queue_setting(api_repo, monkeypatch):
    sd = small_model(0, width=32)
    monkeypatch.setenv("GIT_THETA_SAVE_QUEUE", "0")
    first = git_theta.save(sd, "model.pt", "one", repo=api_repo.cwd, background=True)
    second = git_theta.save(step(sd, 1), "model.pt", "two", repo=api_repo.cwd, background=True)
    assert first.done()  # with no queue, a second save waits for the first before returning
    second.result()
    assert api_repo.out("log", "--format=%s", "-2").split() == ["two", "one"]
    monkeypatch.setenv("GIT_THETA_SAVE_QUEUE", "many")
    with pytest.raises(ThetaError, match="GIT_THETA_SAVE_QUEUE='many'"):
        git_theta.save(sd, "model.pt", repo=api_repo.cwd, background=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_background_save_of_device_tensors(api_repo):
    sd = {"w": torch.randn(2048, 2048, device="cuda"), "b": torch.arange(5.0, device="cuda")}
    expected = {k: v.cpu().clone() for k, v in sd.items()}
    handle = git_theta.save(sd, "model.pt", repo=api_repo.cwd, background=True)
    sd["w"].add_(1)  # the copy was taken before save() returned
    assert_same_state(git_theta.load("model.pt", handle.result(), repo=api_repo.cwd), expected)


def test_pending_background_save_survives_normal_exit(api_repo):
    script = (
        "import torch, git_theta\n"
        "git_theta.save({'w': torch.arange(6.0)}, 'model.pt', 'at exit', background=True)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=api_repo.cwd, env=api_repo.env, check=True)
    assert api_repo.out("log", "-1", "--format=%s").strip() == "at exit"
    assert torch.equal(git_theta.load("model.pt", repo=api_repo.cwd)["w"], torch.arange(6.0))


def test_frameworks_and_nested_dicts(api_repo):
    import tensorflow as tf

    arrays = {"enc": {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float16)}}
    git_theta.save(arrays, "m.safetensors", repo=api_repo.cwd)
    back = git_theta.load("m.safetensors", framework="numpy", nested=True, repo=api_repo.cwd)
    assert np.array_equal(back["enc"]["w"], arrays["enc"]["w"]) and back["enc"]["b"].dtype == np.float16
    git_theta.save({"a": np.arange(4.0)}, "m.npz", repo=api_repo.cwd)
    assert np.array_equal(git_theta.load("m.npz", framework="numpy", repo=api_repo.cwd)["a"], np.arange(4.0))
    git_theta.save(
        {"params": {"dense": {"kernel": np.ones((2, 2), np.float32)}}}, "m.msgpack", repo=api_repo.cwd
    )
    assert git_theta.load("m.msgpack", framework="numpy", repo=api_repo.cwd)["params/dense/kernel"].shape == (
        2,
        2,
    )
    git_theta.save({"v": tf.constant([1.0, 2.0])}, "tf.pt", repo=api_repo.cwd)
    got = git_theta.load("tf.pt", framework="tensorflow", repo=api_repo.cwd)["v"]
    assert got.numpy().tolist() == [1.0, 2.0]
    nested = {"model": {"w": torch.ones(2)}, "ema": {"w": torch.zeros(2)}}
    git_theta.save(nested, "nested.pt", repo=api_repo.cwd, materialize=True)
    assert_same_state(torch.load(os.path.join(api_repo.cwd, "nested.pt"))["ema"], nested["ema"])
    assert api_repo.status() == ""


def test_branch_and_materialize(api_repo):
    sd = small_model(0, width=16)
    head = api_repo.out("rev-parse", "HEAD").strip()
    sha = git_theta.save(sd, "model.pt", "experiment", branch="exp", repo=api_repo.cwd)
    assert api_repo.out("rev-parse", "HEAD").strip() == head
    assert api_repo.out("rev-parse", "exp").strip() == sha
    assert_same_state(git_theta.load("model.pt", "exp", repo=api_repo.cwd), sd)
    git_theta.save(sd, "model.pt", "here", materialize=True, repo=api_repo.cwd)
    assert_same_state(torch.load(os.path.join(api_repo.cwd, "model.pt")), sd)
    assert api_repo.status() == ""


def test_errors(api_repo):
    git_theta.save({"w": torch.ones(1)}, "model.pt", repo=api_repo.cwd)
    with pytest.raises(ThetaError, match="unknown revision 'nope'"):
        git_theta.load("model.pt", "nope", repo=api_repo.cwd)
    with pytest.raises(ThetaError, match="has no parameter"):
        git_theta.load("model.pt", names=["x"], repo=api_repo.cwd)
    with pytest.raises(ThetaError, match="unknown framework"):
        git_theta.load("model.pt", framework="mxnet", repo=api_repo.cwd)
    with pytest.raises(ThetaError, match="unknown update type"):
        git_theta.save({"w": torch.ones(1)}, "model.pt", update_type="zip", repo=api_repo.cwd)
    with pytest.raises(ThetaError, match="not a tensor"):
        git_theta.save({"w": "text"}, "model.pt", repo=api_repo.cwd)


def test_api_names_are_functions_whatever_is_imported():
    """git_theta.save/load/log/diff stay the API even after every subpackage has been imported."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(git_theta.__path__, "git_theta."):
        if ".integrations." not in module.name:
            importlib.import_module(module.name)
    assert all(
        callable(getattr(git_theta, n)) and not isinstance(getattr(git_theta, n), type(os))
        for n in ("save", "load", "log", "diff")
    )
