"""The codec's blosc chunks through numcodecs: the same zarr layout tensorstore reads and writes."""

import io

import msgpack
import numpy as np
import pytest

from git_theta import chunks, codec
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor


def test_runs_cover_the_array_in_key_order():
    plan = chunks.runs((50257, 768), [2730, 768])
    assert [r.key for r in plan[:2]] == ["0.0", "1.0"] and len(plan) == 19
    assert plan[-1].start == 18 * 2730 * 768 and plan[-1].length == (50257 - 18 * 2730) * 768
    assert plan[-1].full == 2730 * 768
    assert sum(r.length for r in plan) == 50257 * 768
    plan = chunks.runs((4, 8_000_000), [1, 2097152])
    assert plan[4].key == "1.0" and plan[4].start == 8_000_000
    assert chunks.runs((10, 10), [10, 10])[0].length == 100
    assert chunks.runs((4, 6), [2, 3]) is None  # a chunk would be two runs: tensorstore's job
    assert chunks.runs((), []) is None


def _encoded(array: np.ndarray, fast: bool, monkeypatch) -> bytes:
    if not fast:
        monkeypatch.setattr(chunks, "runs", lambda shape, c: None)
    sink = io.BytesIO()
    codec.encode(RawTensor.from_numpy(array), sink, codec.BLOSC)  # the layout this module reads
    monkeypatch.undo()
    return sink.getvalue()


def _decoded(blob: bytes, array: np.ndarray, fast: bool, monkeypatch) -> np.ndarray:
    if not fast:
        monkeypatch.setattr(codec, "_fast_plan", lambda *a: None)
    t = codec.decode(blob, str(array.dtype), array.shape)
    monkeypatch.undo()
    return np.frombuffer(t.data, dtype=array.dtype).reshape(array.shape)


@pytest.mark.parametrize("shape", [(3000, 1000), (5, 700_000), (1000,), (7, 3)])
@pytest.mark.parametrize("write_fast,read_fast", [(True, False), (False, True), (True, True)])
def test_either_side_reads_what_the_other_wrote(shape, write_fast, read_fast, monkeypatch):
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    blob = _encoded(array, write_fast, monkeypatch)
    assert np.array_equal(_decoded(blob, array, read_fast, monkeypatch), array)


def test_a_chunk_whose_header_lies_about_its_size_is_refused():
    array = np.arange(4000, dtype=np.float32)
    sink = io.BytesIO()
    codec.encode(RawTensor.from_numpy(array), sink, codec.BLOSC)  # the layout this module reads
    stored = msgpack.unpackb(sink.getvalue(), raw=False)
    key = next(k for k in stored if k != ".zarray")
    frame = bytearray(stored[key])
    frame[4:8] = (16 * 4000).to_bytes(4, "little")  # claims four times the chunk
    stored[key] = bytes(frame)
    with pytest.raises(ThetaError, match="corrupt"):
        codec.decode(msgpack.packb(stored, use_bin_type=True), "float32", (4000,))
    frame[4:8] = (4 * 4000).to_bytes(4, "little")
    frame[12:16] = (len(frame) + 5).to_bytes(4, "little")  # claims more bytes than it has
    stored[key] = bytes(frame)
    with pytest.raises(ThetaError, match="corrupt"):
        codec.decode(msgpack.packb(stored, use_bin_type=True), "float32", (4000,))
