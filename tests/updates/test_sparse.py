"""Sparse updates: computed ones are exact for every dtype; side-loaded ones add a CSR change."""

import numpy as np
import pytest

from git_theta.updates.sparse import SparseUpdate, changed_share_at_least
from tests.updates.helpers import raw, shape_entry


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.uint8, np.complex128, np.bool_])
def test_parts_then_apply_is_bit_exact(dtype):
    rng = np.random.default_rng(0)
    old = (rng.standard_normal(1000) * 5).astype(dtype)
    new = old.copy()
    new[[3, 500, 999]] = old[[4, 7, 8]] if dtype != np.bool_ else ~old[[3, 500, 999]]
    if dtype == np.float32:
        new.view(np.uint32)[10] = 0x7FC00001  # a NaN payload
        new[11] = -0.0 if old[11] == 0 else -old[11]
    u = SparseUpdate()
    parts = u.parts(raw(new), raw(old))
    assert bytes(u.apply(raw(old), parts, shape_entry(old, "sparse"), "p").data) == new.tobytes()
    changed = np.any(old.view(np.uint8).reshape(1000, -1) != new.view(np.uint8).reshape(1000, -1), axis=1)
    positions = np.cumsum(parts["gaps"].numpy().astype(np.int64)) - 1
    assert positions.tolist() == np.flatnonzero(changed).tolist()


def test_side_csr_adds_like_numpy_with_duplicates():
    rng = np.random.default_rng(1)
    old = rng.standard_normal((6, 5)).astype(np.float32)
    indices = np.array([0, 7, 7, 29])
    data = np.array([1.5, -2.0, 0.25, 3.0], dtype=np.float32)
    parts = {
        "data": raw(data),
        "indices": raw(indices.astype(np.int64)),
        "indptr": raw(np.array([0, 4], dtype=np.int64)),
        "shape": raw(np.array([6, 5], dtype=np.int64)),
    }
    u = SparseUpdate()
    assert u.check_side(parts, "float32", (6, 5)) is None
    dense = np.zeros(30, dtype=np.float32)
    np.add.at(dense, indices, data)
    expected = old + dense.reshape(6, 5)  # what the original and its users compute
    got = u.apply(raw(old), parts, shape_entry(old, "sparse"), "p")
    assert bytes(got.data) == expected.tobytes()


def test_side_csr_checks():
    u = SparseUpdate()
    ok = {
        "data": raw(np.ones(2, np.float32)),
        "indices": raw(np.array([0, 1], np.int64)),
        "indptr": raw(np.array([0, 2], np.int64)),
        "shape": raw(np.array([2, 2], np.int64)),
    }
    assert u.check_side(ok, "float32", (2, 2)) is None
    assert "shape" in u.check_side(ok, "float32", (4,))
    assert "indices" in u.check_side(dict(ok, indices=raw(np.array([0, 4], np.int64))), "float32", (2, 2))
    assert "indptr" in u.check_side(dict(ok, indptr=raw(np.array([0, 1, 2], np.int64))), "float32", (2, 2))


def test_changed_share_sampling_skips_the_mask_only_for_broad_changes():
    rng = np.random.default_rng(3)
    old = rng.standard_normal(1 << 18).astype(np.float32)
    every = old * np.float32(1.0001)
    tenth = old.copy()
    tenth[::10] += 1
    block = old.copy()
    block[: len(old) // 5] += 1  # a fifth of the tensor, contiguous
    assert changed_share_at_least(raw(every), raw(old), 0.6)
    assert not changed_share_at_least(raw(tenth), raw(old), 0.6)
    assert not changed_share_at_least(raw(block), raw(old), 0.6)
    small = old[:1000]
    assert not changed_share_at_least(raw(small * np.float32(2)), raw(small), 0.6)  # exact mask instead
