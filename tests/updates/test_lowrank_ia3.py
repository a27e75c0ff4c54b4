"""Low-rank and IA3 updates: side data applies like numpy; computed ones fit what they can."""

import numpy as np

from git_theta.updates.ia3 import IA3Update
from git_theta.updates.lowrank import LowRankUpdate
from tests.updates.helpers import raw, shape_entry


def test_low_rank_side_data_is_numpy_prev_plus_r_at_c():
    rng = np.random.default_rng(0)
    prev = rng.standard_normal((12, 10)).astype(np.float32)
    r, c = rng.standard_normal((12, 3)).astype(np.float32), rng.standard_normal((3, 10)).astype(np.float32)
    u = LowRankUpdate()
    parts = {"R": raw(r), "C": raw(c)}
    assert u.check_side(parts, "float32", (12, 10)) is None
    got = u.apply(raw(prev), parts, shape_entry(prev, "low-rank"), "p")
    assert bytes(got.data) == (prev + r @ c).tobytes()
    assert "does not give" in u.check_side({"R": raw(r), "C": raw(c.T.copy())}, "float32", (12, 10))
    assert "2 or more" in u.check_side(parts, "float32", (12,))


def test_low_rank_side_data_in_the_original_batched_layout():
    """R (d0, ..., d(n-1), k) @ C (k, dn) is applied as the original does: numpy's batched matmul."""
    rng = np.random.default_rng(4)
    prev = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    r, c = rng.uniform(size=(16, 3, 3, 2)).astype(np.float32), rng.uniform(size=(2, 3)).astype(np.float32)
    u = LowRankUpdate()
    parts = {"R": raw(r), "C": raw(c)}
    assert u.check_side(parts, "float32", prev.shape) is None
    got = u.apply(raw(prev), parts, shape_entry(prev, "low-rank"), "p")
    assert bytes(got.data) == (r @ c + prev).tobytes()
    flat_r, flat_c = rng.standard_normal((16, 2)).astype(np.float32), rng.standard_normal((2, 27)).astype(
        np.float32
    )
    flat = {"R": raw(flat_r), "C": raw(flat_c)}
    assert u.check_side(flat, "float32", prev.shape) is None  # ours, the parameter as a (16, 27) matrix
    got = u.apply(raw(prev), flat, shape_entry(prev, "low-rank"), "p")
    assert bytes(got.data) == (prev.reshape(16, 27) + flat_r @ flat_c).reshape(prev.shape).tobytes()
    wrong = {"R": raw(r[:, :, :2]), "C": raw(c)}
    assert "R [16, 3, 2, 2] @ C [2, 3] does not give [16, 3, 3, 3]" in u.check_side(
        wrong, "float32", prev.shape
    )


def test_low_rank_computed_recovers_the_rank_and_respects_k(monkeypatch):
    rng = np.random.default_rng(1)
    prev = rng.standard_normal((64, 48))
    change = rng.standard_normal((64, 4)) @ rng.standard_normal((4, 48)) * 0.01
    new = prev + change
    u = LowRankUpdate()
    parts = u.parts(raw(new), raw(prev))
    assert parts["R"].shape == (64, 4) and parts["C"].shape == (4, 48)
    approx = u.apply(raw(prev), parts, shape_entry(prev, "low-rank"), "p").numpy()
    assert np.allclose(approx, new, atol=1e-12)
    monkeypatch.setenv("GIT_THETA_LOW_RANK_K", "2")
    assert u.parts(raw(new), raw(prev))["R"].shape == (64, 2)
    assert u.parts(raw(new[0]), raw(prev[0])) is None  # a vector: stored exactly instead


def test_ia3_side_and_computed():
    rng = np.random.default_rng(2)
    prev = rng.standard_normal((8, 5)).astype(np.float32)
    scale = rng.standard_normal((8, 1)).astype(np.float32)
    u = IA3Update()
    got = u.apply(raw(prev), {"ia3": raw(scale)}, shape_entry(prev, "ia3"), "p")
    assert bytes(got.data) == (prev * scale).tobytes()
    assert u.check_side({"ia3": raw(scale)}, "float32", (8, 5)) is None
    assert "broadcast" in u.check_side({"ia3": raw(np.ones((3, 1), np.float32))}, "float32", (8, 5))
    parts = u.parts(raw(prev * scale), raw(prev))
    assert np.allclose(parts["ia3"].numpy(), scale, rtol=1e-5)
