"""End to end: NumPy files and sharded Hugging Face checkpoints through git."""

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import lfs_objects, small_model


def test_npz_add_change_checkout(repo):
    repo.theta("track", "*.npz")
    path = os.path.join(repo.cwd, "w.npz")
    rng = np.random.default_rng(0)
    v1 = {"a": rng.random((8, 8)).astype(np.float32), "b": np.arange(5)}
    np.savez(path, **v1)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    before = set(lfs_objects(repo.cwd))
    v2 = dict(v1, a=v1["a"] * 2)
    np.savez(path, **v2)
    repo("commit", "-qam", "v2")
    assert len(set(lfs_objects(repo.cwd)) - before) == 1
    repo("checkout", "-q", "HEAD~1")
    got = np.load(path)
    assert all(np.array_equal(got[k], v1[k]) for k in v1)
    assert repo.status() == ""


def write_shards(folder: str, sd: dict, per_shard: int, ext: str = "safetensors") -> None:
    names = list(sd)
    shards = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    for f in os.listdir(folder):
        if f.startswith("model-"):
            os.remove(os.path.join(folder, f))
    weight_map = {}
    for k, group in enumerate(shards, 1):
        fname = f"model-{k:05d}-of-{len(shards):05d}.{ext}"
        if ext == "safetensors":
            save_file(
                {n: sd[n].contiguous() for n in group}, os.path.join(folder, fname), metadata={"format": "pt"}
            )
        else:
            torch.save({n: sd[n] for n in group}, os.path.join(folder, fname))
        weight_map.update({n: fname for n in group})
    with open(os.path.join(folder, f"model.{ext}.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)


@pytest.mark.parametrize("ext", ["safetensors", "bin"])
def test_resharded_checkpoint_adds_no_tensor_objects(repo, ext):
    repo.theta("track", f"model-*.{ext}")
    sd = dict(small_model(0, width=32, layers=4))
    write_shards(repo.cwd, sd, per_shard=4, ext=ext)
    repo("add", "-A")
    repo("commit", "-qm", "sharded")
    before = set(lfs_objects(repo.cwd))
    assert before and repo.out("show", f"HEAD:model-00001-of-00003.{ext}").startswith("{")
    write_shards(repo.cwd, sd, per_shard=3, ext=ext)  # same tensors, different shard boundaries
    repo("add", "-A")
    repo("commit", "-qm", "resharded")
    assert set(lfs_objects(repo.cwd)) == before
    changed = dict(sd)
    changed["head.weight"] = sd["head.weight"] + 1
    write_shards(repo.cwd, changed, per_shard=3, ext=ext)
    repo("add", "-A")
    repo("commit", "-qm", "fine-tuned head")
    assert len(set(lfs_objects(repo.cwd)) - before) == 1
    repo("checkout", "-q", "HEAD~1")
    shutil_free = [f for f in os.listdir(repo.cwd) if f.startswith("model-")]
    for f in shutil_free:
        os.remove(os.path.join(repo.cwd, f))
    repo("checkout", "--", ".")
    index = json.load(open(os.path.join(repo.cwd, f"model.{ext}.index.json")))
    for name, fname in index["weight_map"].items():
        shard = os.path.join(repo.cwd, fname)
        tensors = load_file(shard) if ext == "safetensors" else torch.load(shard, weights_only=True)
        assert torch.equal(tensors[name], sd[name])
    assert repo.status() == ""


def test_format_from_gitattributes_and_listing(repo):
    with open(os.path.join(repo.cwd, ".gitattributes"), "w") as f:
        f.write("weights.dat filter=theta diff=theta merge=theta -text theta-format=safetensors\n")
    path = os.path.join(repo.cwd, "weights.dat")
    save_file({"w": torch.ones(3)}, path)
    repo("add", "-A")
    meta = json.loads(repo.out("show", ":weights.dat"))
    assert meta["checkpoint"]["format"] == "safetensors"
    listing = repo.theta("formats").stdout.decode()
    assert "pytorch" in listing and "safetensors" in listing and "numpy" in listing
    with open(os.path.join(repo.cwd, ".gitattributes"), "a") as f:
        f.write("other.dat filter=theta theta-format=tensorflow-of-the-future\n")
    save_file({"w": torch.ones(3)}, os.path.join(repo.cwd, "other.dat"))
    proc = repo("add", "other.dat", check=False)
    assert (
        proc.returncode != 0 and "unknown checkpoint type 'tensorflow-of-the-future'" in proc.stderr.decode()
    )


def test_flax_checkpoint_through_git(repo):
    import pytest

    serialization = pytest.importorskip("flax.serialization")
    jnp = pytest.importorskip("jax.numpy")
    repo.theta("track", "flax_model.msgpack")
    path = os.path.join(repo.cwd, "flax_model.msgpack")
    rng = np.random.default_rng(0)
    v1 = {"params": {"a": rng.random((4, 4)).astype(np.float32), "b": jnp.ones(3, jnp.bfloat16)}}
    open(path, "wb").write(serialization.to_bytes(v1))
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    before = set(lfs_objects(repo.cwd))
    v2 = {"params": {"a": v1["params"]["a"] + 1, "b": v1["params"]["b"]}}
    open(path, "wb").write(serialization.to_bytes(v2))
    repo("commit", "-qam", "v2")
    assert len(set(lfs_objects(repo.cwd)) - before) == 1
    repo("checkout", "-q", "HEAD~1")
    back = serialization.msgpack_restore(open(path, "rb").read())
    np.testing.assert_array_equal(back["params"]["a"], v1["params"]["a"])
    assert back["params"]["b"].dtype == jnp.bfloat16
    assert repo.status() == ""
