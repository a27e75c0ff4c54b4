"""auto: the smallest exact encoding per change, chains bounded, every version rebuilt exactly."""

import numpy as np
import pytest

from git_theta.updates import chain
from tests.updates.helpers import back, put


def fp32(shape, seed=0, scale=0.02):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def test_choices(store, monkeypatch):
    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", "smallest")  # storage first: every change a delta
    v0 = fp32((512, 256))
    e0 = put(store, v0)
    assert e0.update_type == "dense"
    sparse = v0.copy()
    sparse.reshape(-1)[::1000] += 0.01
    e1 = put(store, sparse, e0)
    assert e1.update_type == "sparse" and e1.size < 0.02 * v0.nbytes
    fine = (v0 + fp32(v0.shape, 1, 1e-4)).astype(np.float32)
    e2 = put(store, fine, e1)
    assert e2.update_type == "bitdelta" and chain.depth(e2) == 1  # built on the snapshot, not on e1
    assert e2.size < 0.8 * v0.nbytes
    grown = np.concatenate([fine, fp32((8, 256), 3)])
    e3 = put(store, grown, e2)
    assert e3.update_type == "bitdelta" and e3.size < 0.1 * grown.nbytes
    unrelated = fp32((520, 256), 9)
    e4 = put(store, unrelated, e3)
    assert e4.update_type == "dense"
    for entry, value in [(e0, v0), (e1, sparse), (e2, fine), (e3, grown), (e4, unrelated)]:
        assert back(store, entry) == value.tobytes()
    assert put(store, unrelated, e4) is e4  # unchanged: the entry is reused


def test_dtype_change_falls_back_to_dense(store):
    v0 = fp32((64, 64))
    e1 = put(store, v0.astype(np.float16), put(store, v0))
    assert e1.update_type == "dense" and back(store, e1) == v0.astype(np.float16).tobytes()


@pytest.mark.parametrize("limit", [2, 3, 8])
def test_chains_stay_within_max_chain(store, monkeypatch, limit):
    monkeypatch.setenv("GIT_THETA_MAX_CHAIN", str(limit))
    value = fp32((200, 50))
    entry = put(store, value)
    for step in range(12):
        value = value.copy()
        value.reshape(-1)[step * 13] += 1
        entry = put(store, value, entry)
        assert len(chain.chain_of(entry)) <= limit
        assert back(store, entry) == value.tobytes()


def test_named_types_fall_back_when_they_cannot_express_a_change(store):
    v0 = fp32((16,))
    e0 = put(store, v0)
    e1 = put(store, v0 + 1, e0, kind="low-rank")  # a vector: stored exactly by auto's choice
    assert e1.update_type in ("dense", "bitdelta", "sparse") and back(store, e1) == (v0 + 1).tobytes()


def _stored_files(store) -> set[str]:
    import os

    return {f for _, _, files in os.walk(store.objects_dir) for f in files}


def test_large_change_streams_and_gives_way_to_a_smaller_dense(store, monkeypatch):
    import os

    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", "smallest")

    v0 = fp32((1024, 512))  # 2 MB: past the size where candidates are encoded whole
    e0 = put(store, v0)
    fine = (v0 + fp32(v0.shape, 1, 1e-5)).astype(np.float32)
    e1 = put(store, fine, e0)
    assert e1.update_type == "bitdelta" and e1.size < e0.size
    flat = np.full(v0.shape, 0.25, np.float32)  # far from the snapshot, but tiny whole
    before = _stored_files(store)
    e2 = put(store, flat, e1)
    assert e2.update_type == "dense" and e2.size < 0.01 * flat.nbytes
    # the change given up half-way left nothing behind: one new object, no temp file
    assert _stored_files(store) - before == {e2.oid}
    assert not os.path.isdir(store.tmp_dir) or os.listdir(store.tmp_dir) == []
    for entry, value in [(e0, v0), (e1, fine), (e2, flat)]:
        assert back(store, entry) == value.tobytes()


def test_large_change_on_a_non_dense_snapshot_estimates_dense(store):
    v0 = np.arange(1024 * 512, dtype=np.float32).reshape(1024, 512)
    e0 = put(store, v0, kind="dense")
    e1 = put(store, v0 * 2, e0)  # exact size of the change vs a sampled estimate of dense
    assert e1.update_type in ("bitdelta", "dense") and back(store, e1) == (v0 * 2).tobytes()
