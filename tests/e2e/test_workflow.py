"""End to end: a user's git workflow on tracked checkpoints, with real git and git-lfs."""

import json
import os

import pytest
import torch

from git_theta.metadata import Metadata
from tests.helpers import assert_same_state, every_dtype, lfs_objects, load, save, small_model


@pytest.mark.parametrize("name", ["model.pt", "model.safetensors"])
def test_track_add_commit_checkout_each_version(repo, name):
    path = os.path.join(repo.cwd, name)
    repo.theta("track", name)
    versions = [small_model(0)]
    v2 = {k: v.clone() for k, v in versions[0].items()}
    v2["layers.1.weight"] += 1.0
    versions.append(v2)
    v3 = {k: v.clone() for k, v in v2.items()}
    v3["head.weight"] *= 2
    versions.append(v3)
    shas = []
    for i, sd in enumerate(versions):
        save(sd, path)
        repo("add", name)
        repo("commit", "-qm", f"v{i}")
        shas.append(repo.out("rev-parse", "HEAD").strip())
        assert repo.status() == ""
    meta = json.loads(repo.out("show", f"HEAD:{name}"))
    assert meta["checkpoint"]["format"] == ("safetensors" if name.endswith("safetensors") else "pytorch")
    assert set(Metadata.loads(repo("show", f"HEAD:{name}").stdout).params) == set(versions[0])
    for sha, sd in zip(shas, versions):
        repo("checkout", "-q", sha)
        assert repo.status() == ""
        assert_same_state(dict(load(path)), dict(sd), ordered=name.endswith(".pt"))
    repo("checkout", "-q", "main")


def test_only_changed_tensors_are_stored(repo):
    repo.theta("track", "model.pt")
    sd = small_model(0)
    save(sd, os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")
    repo("commit", "-qm", "v1")
    before = set(lfs_objects(repo.cwd))
    sd["layers.0.weight"] = sd["layers.0.weight"] + 1
    save(sd, os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")
    repo("commit", "-qm", "v2")
    new = set(lfs_objects(repo.cwd)) - before
    assert len(new) == 1
    diff = repo.out("diff", "HEAD~1", "HEAD", "--", "model.pt")
    assert "layers.0.weight" in diff and "1 of 6 parameters changed (1 modified" in diff
    # a re-save of the same tensors changes nothing that git sees
    torch.save(load(os.path.join(repo.cwd, "model.pt")), os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")
    assert repo.status() == ""


def test_every_dtype_round_trips_bit_exact(repo):
    repo.theta("track", "*.pt")
    sd = every_dtype()
    save(sd, os.path.join(repo.cwd, "dtypes.pt"))
    repo("add", "dtypes.pt")
    repo("commit", "-qm", "dtypes")
    os.remove(os.path.join(repo.cwd, "dtypes.pt"))
    repo("checkout", "--", "dtypes.pt")
    assert repo.status() == ""
    assert_same_state(load(os.path.join(repo.cwd, "dtypes.pt")), sd)


def test_nested_checkpoint_structure_is_kept(repo):
    repo.theta("track", "ckpt.pt")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    ckpt = {
        "model": model.state_dict(),
        "step": 1200,
        "lr": 3e-4,
        "history": [torch.arange(5), (1, "warmup", None)],
        "param": torch.nn.Parameter(torch.ones(2)),
    }
    path = os.path.join(repo.cwd, "ckpt.pt")
    torch.save(ckpt, path)
    repo("add", "ckpt.pt")
    repo("commit", "-qm", "nested")
    os.remove(path)
    repo("checkout", "--", "ckpt.pt")
    back = torch.load(path, weights_only=True)
    assert_same_state(back, ckpt)
    assert back["model"]._metadata == ckpt["model"]._metadata
    assert isinstance(back["param"], torch.nn.Parameter)


def test_clone_from_bare_remote_fetches_objects(repo, bare_remote, tmp_path):
    repo.theta("track", "model.pt")
    sd = small_model(1)
    save(sd, os.path.join(repo.cwd, "model.pt"))
    repo("add", "model.pt")
    repo("commit", "-qm", "v1")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    remote_objects = {
        f for _, _, files in os.walk(os.path.join(bare_remote, "lfs", "objects")) for f in files
    }
    assert remote_objects == set(lfs_objects(repo.cwd))
    clone_dir = str(tmp_path / "clone")
    repo("clone", "-q", bare_remote, clone_dir)
    clone = repo.at(clone_dir)
    assert clone.status() == ""
    assert_same_state(load(os.path.join(clone_dir, "model.pt")), sd)
    # a second push sends only what changed
    sd["head.weight"] += 1
    save(sd, os.path.join(clone_dir, "model.pt"))
    clone("add", "model.pt")
    clone("commit", "-qm", "v2")
    clone("push", "-q", "origin", "main")
    repo("pull", "-q", "origin", "main")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), sd)
    assert repo.status() == ""


def test_stash_reset_switch(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    v1 = small_model(0)
    save(v1, path)
    repo("add", "model.pt")
    repo("commit", "-qm", "v1")
    v2 = small_model(5)
    save(v2, path)
    repo("stash", "-q")
    assert_same_state(load(path), v1)
    repo("stash", "pop", "-q")
    assert_same_state(load(path), v2)
    repo("reset", "-q", "--hard")
    assert_same_state(load(path), v1)
    repo("switch", "-q", "-c", "other")
    save(v2, path)
    repo("commit", "-qam", "v2 on other")
    repo("switch", "-q", "main")
    assert_same_state(load(path), v1)
    repo("switch", "-q", "other")
    assert_same_state(load(path), v2)
    assert repo.status() == ""


def test_two_models_and_subdirectory(repo):
    os.makedirs(os.path.join(repo.cwd, "models", "sub"))
    sub = repo.at(os.path.join(repo.cwd, "models", "sub"))
    sub.theta("track", "deep.safetensors")
    repo.theta("track", "top.pt")
    attrs = open(os.path.join(repo.cwd, ".gitattributes")).read()
    assert "models/sub/deep.safetensors filter=theta" in attrs
    a, b = small_model(2), small_model(3)
    save(a, os.path.join(repo.cwd, "top.pt"))
    save(b, os.path.join(repo.cwd, "models", "sub", "deep.safetensors"))
    repo("add", "-A")
    repo("commit", "-qm", "two models")
    assert sorted(repo.theta("ls-files").stdout.decode().split()) == ["models/sub/deep.safetensors", "top.pt"]
    for f in ("top.pt", "models/sub/deep.safetensors"):
        os.remove(os.path.join(repo.cwd, f))
    repo("checkout", "--", ".")
    assert_same_state(load(os.path.join(repo.cwd, "top.pt")), a)
    assert_same_state(
        load(os.path.join(repo.cwd, "models", "sub", "deep.safetensors")), dict(b), ordered=False
    )
    assert repo.status() == ""


def test_legacy_torch_checkpoint_round_trips(repo):
    repo.theta("track", "old.pt")
    sd = small_model(4)
    path = os.path.join(repo.cwd, "old.pt")
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    repo("add", "old.pt")
    repo("commit", "-qm", "legacy")
    os.remove(path)
    repo("checkout", "--", "old.pt")
    assert open(path, "rb").read(2) == b"\x80\x02"  # still the legacy format
    assert_same_state(load(path), sd)


def test_safetensors_file_round_trips_byte_identical(repo):
    from safetensors.torch import save_file

    repo.theta("track", "m.safetensors")
    path = os.path.join(repo.cwd, "m.safetensors")
    save_file(dict(small_model(6)), path, metadata={"format": "pt", "note": "kept"})
    original = open(path, "rb").read()
    repo("add", "m.safetensors")
    repo("commit", "-qm", "st")
    os.remove(path)
    repo("checkout", "--", "m.safetensors")
    assert open(path, "rb").read() == original


def test_tolerance_mode_keeps_head_values(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    sd = small_model(0)
    save(sd, path)
    repo("add", "model.pt")
    repo("commit", "-qm", "v1")
    nudged = type(sd)((k, v + 1e-9 if v.is_floating_point() else v) for k, v in sd.items())
    save(nudged, path)
    env = dict(repo.env, GIT_THETA_PARAMETER_ATOL="1e-6", GIT_THETA_PARAMETER_RTOL="0")
    tolerant = type(repo)(repo.cwd, env)
    tolerant("add", "model.pt")
    assert repo.out("diff", "--cached", "--stat") == ""  # every change was within tolerance
    stamp = os.stat(path).st_mtime + 5
    os.utime(path, (stamp, stamp))  # make git look at the file again
    repo("add", "model.pt")  # exact by default: the nudge is a change
    assert "model.pt" in repo.out("diff", "--cached", "--stat")
