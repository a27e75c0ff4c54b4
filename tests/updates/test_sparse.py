"""Sparse updates are exact for every dtype, including NaN payloads and -0.0."""

import numpy as np
import pytest

from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates.sparse import SparseUpdate


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
    o, n = RawTensor.from_numpy(old), RawTensor.from_numpy(new)
    parts = u.parts(n, o)
    entry = ParamEntry(o.dtype, o.shape, "", "0" * 64, 0, "sparse")
    back = u.apply(o, parts, entry)
    assert bytes(back.data) == bytes(n.data)
    changed = np.any(old.view(np.uint8).reshape(1000, -1) != new.view(np.uint8).reshape(1000, -1), axis=1)
    assert parts["indices"].numpy().tolist() == np.flatnonzero(changed).tolist()
