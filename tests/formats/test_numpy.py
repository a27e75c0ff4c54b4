"""NumPy .npy/.npz: byte-identical .npy, orders and byte orders kept, no unpickling."""

import io

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats.detect import detect
from git_theta.formats.numpy_format import NumpyCheckpoint
from tests.helpers import rewrite


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=">f4").reshape(3, 4),
        np.asfortranarray(np.random.default_rng(0).random((3, 5))),
        np.array(3.5),
        np.zeros((0, 2), np.int8),
        np.array([True, False]),
        np.arange(6, dtype=np.uint64),
        np.array([1 + 2j], np.complex64),
    ],
)
def test_npy_round_trip_is_byte_identical(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    ck, back = rewrite(NumpyCheckpoint(), buf.getvalue(), "a.npy")
    assert back == buf.getvalue()
    assert list(ck.tensors) == ["array"]


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_members_order_and_compression(compressed):
    buf = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buf, w=np.random.default_rng(1).random((4, 4)).astype(np.float32), b=np.arange(3))
    assert detect("weights.npz", buf.getvalue()[:64]).name == "numpy"
    ck, back = rewrite(NumpyCheckpoint(), buf.getvalue(), "weights.npz")
    assert list(ck.tensors) == ["w", "b"] and ck.layout["compressed"] is compressed
    a, b = np.load(io.BytesIO(back)), np.load(io.BytesIO(buf.getvalue()))
    assert list(a.keys()) == list(b.keys()) and all(np.array_equal(a[k], b[k]) for k in b)


def test_object_arrays_are_refused():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        NumpyCheckpoint().read(memoryview(buf.getvalue()), "x.npy")


def test_truncated_npy():
    buf = io.BytesIO()
    np.save(buf, np.arange(100.0))
    with pytest.raises(CheckpointError, match="truncated"):
        NumpyCheckpoint().read(memoryview(buf.getvalue()[:-9]), "x.npy")
