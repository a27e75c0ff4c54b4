"""Fuzzing the stored-object decoders with hypothesis: truncated, bit-flipped, spliced or
overwritten objects of both layouts (planes, and the zarr blosc layout written before) either
decode to a tensor of exactly the expected size or are refused with a ThetaError naming the
parameter, never another exception."""

import io
import os

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_theta import codec, dtypes, planes
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor, numel

SETTINGS = settings(
    max_examples=int(os.environ.get("GIT_THETA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _samples() -> list[tuple[str, tuple, bytes]]:
    """(dtype, shape, stored bytes): planes objects of several chunks, and blosc ones."""
    rng = np.random.default_rng(0)
    saved, planes.CHUNK_BYTES = planes.CHUNK_BYTES, 512  # many chunks in a few kB
    try:
        tensors = [
            RawTensor.from_numpy((rng.standard_normal((40, 30)) * 0.02).astype(np.float32)),
            RawTensor.from_numpy((rng.standard_normal(700) * 0.02).astype(ml_dtypes.bfloat16), "bfloat16"),
            RawTensor.from_numpy(rng.standard_normal(300).astype(np.float16)),
            RawTensor.from_numpy(
                np.where(rng.random(2000) < 0.9, 0, rng.integers(0, 99, 2000)).astype(np.uint32)
            ),
            RawTensor.from_numpy(np.float32(1.5).reshape(())),
        ]
        out = []
        for t in tensors:
            for compressor in (None, codec.BLOSC):
                sink = io.BytesIO()
                codec.encode(t, sink, compressor)
                out.append((t.dtype, t.shape, sink.getvalue()))
    finally:
        planes.CHUNK_BYTES = saved
    return out


SAMPLES = _samples()


def _decode_or_refuse(dtype: str, shape: tuple, blob: bytes) -> None:
    try:
        back = codec.decode(blob, dtype, shape, what="parameter 'w'")
    except ThetaError as exc:
        assert "'w'" in str(exc) and "\n" not in str(exc) and len(str(exc)) <= 700
        return
    assert back.dtype == dtype and tuple(back.shape) == tuple(shape)
    assert len(back.data) == numel(shape) * dtypes.get(dtype).itemsize


@pytest.mark.parametrize("with_blosc", [True, False])
@pytest.mark.parametrize("index", range(len(SAMPLES)))
@SETTINGS
@given(data=st.data())
def test_mutated_objects_decode_or_are_refused(index, with_blosc, data, monkeypatch):
    """Planes chunks decoded by c-blosc and by the fallback that decodes them plane by plane."""
    monkeypatch.setattr(planes, "blosc_decodes", lambda: with_blosc and planes.blosc_decodes.__wrapped__())
    dtype, shape, blob = SAMPLES[index]
    blob = bytearray(blob)
    action = data.draw(st.sampled_from(["truncate", "flip", "overwrite", "splice", "insert"]))
    if action == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif action == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif action == "overwrite":  # header and length fields are where the bytes that matter are
        at = data.draw(st.integers(0, min(len(blob) - 1, 64)))
        piece = data.draw(st.binary(min_size=1, max_size=8))
        blob[at : at + len(piece)] = piece
    elif action == "splice":
        _, _, other = data.draw(st.sampled_from(SAMPLES))
        cut = data.draw(st.integers(0, len(blob)))
        blob = blob[:cut] + other[data.draw(st.integers(0, len(other))) :]
    else:
        at = data.draw(st.integers(0, len(blob)))
        blob[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    _decode_or_refuse(dtype, shape, bytes(blob))


@SETTINGS
@given(
    body=st.binary(max_size=400), dtype=st.sampled_from(sorted(planes.ROTATION)), count=st.integers(0, 5000)
)
def test_garbage_after_the_magic_is_refused_cleanly(body, dtype, count):
    _decode_or_refuse(dtype, (count,), planes.MAGIC + body)


@SETTINGS
@given(
    width=st.sampled_from([2, 4]),
    rot=st.integers(0, 40),
    log2=st.integers(0, 40),
    count=st.integers(0, 1 << 40),
    body=st.binary(max_size=200),
)
def test_headers_of_any_values_are_refused_cleanly(width, rot, log2, count, body):
    head = planes.HEADER.pack(planes.MAGIC, planes.VERSION, width, rot, log2, 1) + count.to_bytes(8, "little")
    dtype = "uint16" if width == 2 else "float32"
    shape = (count,) if count <= 1 << 20 else (1,)
    _decode_or_refuse(dtype, shape, head + body)
