"""The storage policy: under `bounded` (the default) no version's fetch closure passes its raw
size, while small changes stay deltas; `smallest` keeps the storage-first choice."""

import numpy as np
import pytest

from git_theta.errors import ThetaError
from git_theta.updates import chain, policy
from tests.updates.helpers import back, put


def fp32(shape, seed=0, scale=0.02):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def fine_tune(v, seed=1, scale=1e-4):
    return (v + fp32(v.shape, seed, scale)).astype(np.float32)


@pytest.mark.parametrize("shape", [(256, 128), (1024, 512)])  # encoded whole / sampled (> 1 MB)
def test_full_fine_tune_becomes_a_snapshot(store, shape):
    v0 = fp32(shape)
    e0 = put(store, v0)
    v1 = fine_tune(v0)
    e1 = put(store, v1, e0)
    assert e1.update_type == "dense"
    assert policy.closure(e1) <= v1.nbytes
    assert back(store, e1) == v1.tobytes()


def test_smallest_keeps_the_delta_past_the_bound(store, monkeypatch):
    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", "smallest")
    v0 = fp32((256, 128))
    e1 = put(store, fine_tune(v0), put(store, v0))
    assert e1.update_type == "bitdelta" and policy.closure(e1) > v0.nbytes


def test_git_config_chooses_the_policy(store, tmp_path, monkeypatch):
    import subprocess

    from git_theta import config

    cfg = tmp_path / "gitconfig"
    subprocess.run(["git", "config", "-f", str(cfg), "theta.storagePolicy", "smallest"], check=True)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_THETA_STORAGE_POLICY", raising=False)
    config._git_config.cache_clear()
    try:
        assert policy.current() == "smallest"
    finally:
        config._git_config.cache_clear()


def test_unknown_policy_is_refused(monkeypatch):
    monkeypatch.setenv("GIT_THETA_STORAGE_POLICY", "cheapest")
    with pytest.raises(ThetaError, match="GIT_THETA_STORAGE_POLICY='cheapest'.*bounded, smallest"):
        policy.current()


@pytest.mark.parametrize("shape", [(256, 128), (1024, 512)])
def test_small_changes_stay_deltas_within_the_bound(store, shape):
    v0 = fp32(shape)
    e0 = put(store, v0)
    sparse = v0.copy()
    sparse.reshape(-1)[::1000] += 0.01
    e1 = put(store, sparse, e0)
    assert e1.update_type == "sparse"
    rows = v0.copy()
    rows[-4:] = fine_tune(rows[-4:], 2, 1e-3)  # an edit confined to a few rows
    e2 = put(store, rows, e0)
    assert e2.update_type in ("bitdelta", "sparse") and e2.size < 0.05 * v0.nbytes
    grown = np.concatenate([v0, fp32((8, shape[1]), 3)])  # appended vocabulary rows
    e3 = put(store, grown, e0)
    assert e3.update_type == "bitdelta" and e3.size < 0.05 * grown.nbytes
    for entry, value in [(e1, sparse), (e2, rows), (e3, grown)]:
        assert policy.closure(entry) <= value.nbytes
        assert back(store, entry) == value.tobytes()


def test_a_chain_of_changes_rebases_on_a_fresh_snapshot(store):
    """Each 4% change fits on its own; their sum would not: the chain is cut by a snapshot,
    and changes go on as deltas on that snapshot."""
    rng = np.random.default_rng(5)
    value = fp32((256, 256))
    entry = put(store, value)
    kinds = []
    for _ in range(8):
        value = value.copy()
        flat = value.reshape(-1)
        idx = rng.choice(flat.size, flat.size // 25, replace=False)
        flat[idx] += 0.01
        entry = put(store, value, entry)
        kinds.append(entry.update_type)
        assert policy.closure(entry) <= value.nbytes
        assert back(store, entry) == value.tobytes()
    assert "dense" in kinds[1:] and kinds.count("sparse") >= 4
    assert kinds.index("dense") < len(kinds) - 1 and kinds[kinds.index("dense") + 1] == "sparse"


def test_grown_rows_on_a_change_stay_bounded(store):
    v0 = fp32((300, 64))
    e0 = put(store, v0)
    v1 = v0.copy()
    v1.reshape(-1)[::500] += 0.01
    e1 = put(store, v1, e0)
    assert chain.depth(e1) == 1
    v2 = np.concatenate([v1, fp32((4, 64), 7)])
    e2 = put(store, v2, e1)
    assert e2.update_type == "bitdelta" and policy.closure(e2) <= v2.nbytes
    assert back(store, e2) == v2.tobytes()


def test_a_named_type_past_the_bound_is_stored_by_auto(store):
    v0 = fp32((256, 128))
    v1 = fine_tune(v0)
    e1 = put(store, v1, put(store, v0), kind="bitdelta")
    assert e1.update_type == "dense" and back(store, e1) == v1.tobytes()


def test_packed_entries_count_their_own_slice():
    from git_theta.metadata import ParamEntry

    base = ParamEntry("float32", (4,), "", "a" * 64, 10_000, "dense", extra={"pack": [100, 40]})
    step = ParamEntry("float32", (4,), "", "b" * 64, 30, "sparse", extra={"base": base.to_json()})
    assert policy.closure(step) == 70
    assert policy.closure(None) == 0


def test_side_loaded_low_rank_of_a_realistic_size_stays_low_rank(store):
    from tests.updates.helpers import raw

    v0 = fp32((768, 768))
    e0 = put(store, v0)
    rng = np.random.default_rng(4)
    r = (rng.standard_normal((768, 8)) * 1e-2).astype(np.float32)
    c = (rng.standard_normal((8, 768)) * 1e-2).astype(np.float32)
    new = (v0 + r @ c).astype(np.float32)
    e1 = put(store, new, e0, kind="low-rank", side={"R": raw(r), "C": raw(c)})
    assert e1.update_type == "low-rank" and policy.closure(e1) <= v0.nbytes
