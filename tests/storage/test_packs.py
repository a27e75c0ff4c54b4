"""Small tensors share pack objects; entries point at their slices and read back bit-exact."""

import os
import subprocess

import numpy as np
import pytest

from git_theta import codec
from git_theta.errors import ThetaError
from git_theta.storage import packs
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry
from git_theta.updates.storing import store_tensor
from tests.conftest import FailingSink


@pytest.fixture
def store(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    return LfsStore.for_cwd(str(tmp_path / "r"))


def _objects(store: LfsStore) -> int:
    return sum(len(f) for _, _, f in os.walk(store.objects_dir))


def test_plan_keeps_order_and_packs_only_small_tensors(monkeypatch):
    monkeypatch.setattr(packs, "PACK_BYTES", 100)
    sizes = {"a": 40, "b": 40, "big": packs.SMALL_BYTES + 1, "c": 40, "d": 40, "e": 40}
    jobs = packs.plan(list(sizes), sizes.__getitem__)
    assert jobs == [["big"], ["a", "b"], ["c", "d"], ["e"]]  # a pack closes before it passes 100
    ordered = packs.plan(list(sizes), sizes.__getitem__, in_order=True)
    assert ordered == [["a", "b"], ["big"], ["c", "d"], ["e"]]  # readers yield in name order


def test_many_small_tensors_few_objects_bit_exact(store, monkeypatch):
    monkeypatch.setattr(packs, "PACK_BYTES", 256 << 10)
    rng = np.random.default_rng(0)
    arrays = {f"t{i}": rng.standard_normal(rng.integers(1, 3000)).astype(np.float32) for i in range(300)}
    arrays["big"] = rng.standard_normal(300_000).astype(np.float32)  # 1.2 MB: an object of its own
    tensors = {n: RawTensor.from_numpy(a) for n, a in arrays.items()}
    entries = {}
    for stored in packs.store_all(
        list(tensors), lambda n: tensors[n].nbytes, lambda n, s: store_tensor(tensors[n], s, n), store
    ):
        entries.update(stored)
    assert sorted(entries) == sorted(tensors)
    assert "pack" not in entries["big"].extra and "pack" in entries["t0"].extra
    assert _objects(store) < 12  # vs 301 objects unpacked
    for name, arr in arrays.items():
        assert bytes(load_entry(entries[name], store, name).data) == arr.tobytes()


def test_changes_to_packed_tensors_build_on_their_slices(store):
    a = np.arange(5000, dtype=np.float32)
    first = packs.PackingStore(store)
    e1 = first.finish(
        {
            "x": store_tensor(RawTensor.from_numpy(a), first, "x"),
            "y": store_tensor(RawTensor.from_numpy(a + 1), first, "y"),
        }
    )
    b = a.copy()
    b[7] = -1  # a sparse change of a packed tensor
    second = packs.PackingStore(store)
    e2 = second.finish({"x": store_tensor(RawTensor.from_numpy(b), second, "x", e1["x"])})
    assert e2["x"].update_type in ("sparse", "bitdelta") and e2["x"].size < 1000
    assert bytes(load_entry(e2["x"], store, "x").data) == b.tobytes()
    assert bytes(load_entry(e1["y"], store, "y").data) == (a + 1).tobytes()


def test_slice_past_the_object_is_an_error(store):
    p = packs.PackingStore(store)
    entries = p.finish(
        {n: store_tensor(RawTensor.from_numpy(np.ones(10, np.float32) * i), p, n) for i, n in enumerate("ab")}
    )
    bad = entries["a"].replace(extra={**entries["a"].extra, "pack": [10**9, 5]})
    with pytest.raises(ThetaError, match="points past the end"):
        load_entry(bad, store, "a")
    worse = entries["a"].replace(extra={**entries["a"].extra, "pack": "x"})
    with pytest.raises(ThetaError, match="malformed pack slice"):
        load_entry(worse, store, "a")


@pytest.mark.parametrize("compressor", [None, codec.BLOSC])
def test_kept_encoder_is_dropped_after_a_failed_write(compressor):
    big = RawTensor.from_numpy(np.arange(3 << 20, dtype=np.uint32))  # several chunks
    with pytest.raises(OSError):
        codec.encode(big, FailingSink(4), compressor)
    import io

    out = io.BytesIO()
    codec.encode(big, out, compressor)  # same spec again: no chunk of the failed attempt may leak in
    assert bytes(codec.decode(out.getvalue(), "uint32", (3 << 20,)).data) == big.data.tobytes()


def test_checkout_of_interleaved_large_and_small_tensors_keeps_order(repo):
    import torch

    from tests.helpers import assert_same_state, load, save

    g = torch.Generator().manual_seed(0)
    sd = {}
    for i in range(4):  # small, large, small, ... as in real models (norms between weights)
        sd[f"l{i}.norm"] = torch.randn(64, generator=g)
        sd[f"l{i}.weight"] = torch.randn(600, 600, generator=g)
        sd[f"l{i}.bias"] = torch.randn(600, generator=g)
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    save(sd, path)
    repo("add", "-A")
    repo("commit", "-qm", "m")
    os.remove(path)
    repo("checkout", "--", "model.pt")
    assert_same_state(load(path), sd)
    objects = sum(len(f) for _, _, f in os.walk(os.path.join(repo.cwd, ".git", "lfs", "objects")))
    assert objects == 5  # four weights alone, every small tensor in one pack


def test_objects_in_a_pack_are_named_by_their_content_and_stored_once(store):
    import hashlib

    p = packs.PackingStore(store)
    w = p.writer()
    w.write(b"some bytes")
    assert w.commit() == (hashlib.sha256(b"some bytes").hexdigest(), 10)  # a real oid, not a placeholder
    x, y = RawTensor.from_numpy(np.arange(100, dtype=np.float32)), RawTensor.from_numpy(np.ones(7, np.int8))
    entries = p.finish(
        {
            "same1": store_tensor(x, p, "same1"),
            "same2": store_tensor(x, p, "same2"),
            "other": store_tensor(y, p, "other"),
        }
    )
    assert entries["same1"].extra["pack"] == entries["same2"].extra["pack"]  # equal bytes: one slice
    assert entries["other"].extra["pack"][0] == entries["same1"].extra["pack"][1] + 10
    assert entries["same1"].size == 10 + sum(e.extra["pack"][1] for e in (entries["same1"], entries["other"]))
    for name, t in (("same1", x), ("same2", x), ("other", y)):
        assert bytes(load_entry(entries[name], store, name).data) == bytes(t.data)
