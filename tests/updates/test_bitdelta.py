"""Bit deltas: exact for every width, cheap where nothing changed, appended rows as a tail."""

import io

import numpy as np
import pytest

from git_theta import codec
from git_theta.updates import words
from git_theta.updates.bitdelta import BitDeltaUpdate
from git_theta.updates.delta import pack_parts
from tests.updates.helpers import raw, shape_entry


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_zigzag_round_trips_extremes(dtype):
    info = np.iinfo(dtype)
    vals = np.array([0, 1, 2, info.max, info.max - 1, info.max // 2, info.max // 2 + 1], dtype=dtype)
    old, new = np.repeat(vals, len(vals)), np.tile(vals, len(vals))
    code = words.zigzag_diff(new.copy(), old)
    assert words.zigzag_apply(old, code).tobytes() == new.tobytes()


def test_small_changes_give_small_codes():
    old = np.array([1.0, -1.0, 0.02], dtype=np.float32)
    new = np.nextafter(old, np.float32(np.inf))
    code = words.zigzag_diff(new.view(np.uint32).copy(), old.view(np.uint32))
    assert code.max() <= 2


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int8, np.complex128, np.bool_])
def test_round_trip_every_width(dtype):
    rng = np.random.default_rng(0)
    old = (rng.standard_normal((40, 3)) * 4).astype(dtype)
    new = (old.astype(np.float64 if dtype != np.complex128 else dtype) * 1.01).astype(dtype)
    if dtype == np.bool_:
        new = ~old
    u = BitDeltaUpdate()
    parts = u.parts(raw(new), raw(old))
    assert bytes(u.apply(raw(old), parts, shape_entry(new, "bitdelta"), "p").data) == new.tobytes()


@pytest.mark.parametrize("rows", [70, 40, 25])
def test_rows_appended_or_dropped(rows):
    rng = np.random.default_rng(0)
    old = rng.standard_normal((40, 8)).astype(np.float32)
    new = np.concatenate([old, rng.standard_normal((30, 8)).astype(np.float32)])[:rows]
    u = BitDeltaUpdate()
    parts = u.parts(raw(new), raw(old))
    assert ("tail" in parts) == (rows > 40)
    assert not parts["delta"].numpy().any()
    assert bytes(u.apply(raw(old), parts, shape_entry(new, "bitdelta"), "p").data) == new.tobytes()
    assert u.parts(raw(new.reshape(-1, 4)), raw(old)) is None  # trailing dims differ


def test_unchanged_chunks_are_not_stored():
    n = 4 * codec.CHUNK_BYTES // 4  # four chunks of float32
    old = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    new = old.copy()
    new[5] += 1
    parts = BitDeltaUpdate().parts(raw(new), raw(old))
    blob = pack_parts(parts, codec.DELTA_COMPRESSOR, skip_zero=True)
    full = io.BytesIO()
    codec.encode(raw(new), full)
    assert len(blob) < 0.01 * len(full.getvalue())  # three of the four chunks cost nothing
