"""The stored form of a tensor: lossless for every dtype, chunked, and checked when read."""

import io

import numpy as np
import pytest

from git_theta import codec
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor
from tests.helpers import every_dtype


def encode(t: RawTensor) -> bytes:
    buf = io.BytesIO()
    codec.encode(t, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", list(every_dtype()))
def test_every_dtype_round_trips(name):
    t = every_dtype()[name]
    raw = RawTensor(
        name, tuple(t.shape), memoryview(t.contiguous().view(-1).view(__import__("torch").uint8).numpy())
    )
    back = codec.decode(encode(raw), raw.dtype, raw.shape)
    assert bytes(back.data) == bytes(raw.data) and back.shape == raw.shape


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (5000, 300), (2, 3_000_000)])
def test_shapes(shape):
    arr = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t = RawTensor.from_numpy(arr)
    back = codec.decode(encode(t), "float32", t.shape)
    assert bytes(back.data) == arr.tobytes() and back.shape == shape


def test_chunks_are_bounded():
    assert codec.chunk_shape((50257, 768), 4) == [2730, 768]
    assert codec.chunk_shape((10, 10), 4) == [10, 10]
    assert codec.chunk_shape((4, 8_000_000), 4) == [1, 2097152]
    assert codec.chunk_shape((), 4) == []


def test_compresses_gaussian_weights():
    arr = (np.random.default_rng(0).standard_normal((1024, 1024)) * 0.02).astype(np.float32)
    assert len(encode(RawTensor.from_numpy(arr))) < 0.9 * arr.nbytes


def test_encoding_is_deterministic():
    arr = np.random.default_rng(1).standard_normal((300, 300)).astype(np.float32)
    t = RawTensor.from_numpy(arr)
    assert encode(t) == encode(t)


def test_garbage_and_mismatches_are_errors():
    good = encode(RawTensor.from_numpy(np.ones((4, 4), np.float32)))
    with pytest.raises(ThetaError, match="corrupt"):
        codec.decode(b"\x93garbage", "float32", (4, 4), what="w")
    with pytest.raises(ThetaError, match="metadata says"):
        codec.decode(good, "float32", (2, 8))
    with pytest.raises(ThetaError, match="corrupt"):
        codec.decode(good[:-10], "float32", (4, 4))


def test_zarr_dtype_names_match_what_tensorstore_writes():
    import json

    from git_theta import dtypes

    for name in dtypes.DTYPES:
        dt = dtypes.get(name)
        key = (dt.name, (1,), (1,), tuple(sorted(codec._COMPRESSOR.items())), False)
        written = json.loads(codec._encoder(key, dt, [1], codec._COMPRESSOR)[2])["dtype"]
        assert codec._zarr_dtype(name) == written, name
