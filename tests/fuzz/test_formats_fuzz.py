"""Fuzzing the checkpoint readers with hypothesis: truncated, bit-flipped or spliced files of
every format are either read or refused with a CheckpointError/ThetaError, never another
exception; what a reader returns is consistent (every tensor's bytes match its dtype and shape)."""

import io
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_theta import dtypes
from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name
from git_theta.tensor import numel

SETTINGS = settings(
    max_examples=int(os.environ.get("GIT_THETA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _state() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(4, 3, generator=g),
        "b": torch.zeros(3, dtype=torch.bfloat16),
        "n": torch.arange(5),
    }


def _torch_zip() -> bytes:
    buf = io.BytesIO()
    torch.save(_state(), buf)
    return buf.getvalue()


def _torch_legacy() -> bytes:
    buf = io.BytesIO()
    torch.save(_state(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _safetensors() -> bytes:
    from safetensors.torch import save

    return save(_state())


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: v.float().numpy() for k, v in _state().items()})
    return buf.getvalue()


def _flax() -> bytes:
    from flax import serialization

    return serialization.msgpack_serialize({"params": {k: v.float().numpy() for k, v in _state().items()}})


SAMPLES = {
    "pytorch": [_torch_zip(), _torch_legacy()],
    "safetensors": [_safetensors()],
    "numpy": [_npz()],
    "flax": [_flax()],
}
CASES = [(fmt, blob) for fmt, blobs in SAMPLES.items() for blob in blobs]


def _read_or_refuse(fmt_name: str, blob: bytes) -> None:
    try:
        checkpoint = by_name(fmt_name).read(memoryview(blob), "model")
    except ThetaError as exc:
        assert len(str(exc)) <= 700 and "\n" not in str(exc)
        return
    for name, tensor in dict(checkpoint.tensors).items():
        assert isinstance(name, str)
        assert len(tensor.data) == numel(tensor.shape) * dtypes.get(tensor.dtype).itemsize


@pytest.mark.parametrize("fmt_name, blob", CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_samples_read(fmt_name, blob):
    assert dict(by_name(fmt_name).read(memoryview(blob), "model").tensors)


@SETTINGS
@given(case=st.sampled_from(CASES), cut=st.floats(0, 1))
def test_truncated_files(case, cut):
    fmt_name, blob = case
    _read_or_refuse(fmt_name, blob[: int(len(blob) * cut)])


@SETTINGS
@given(
    case=st.sampled_from(CASES),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_bit_flipped_files(case, flips):
    fmt_name, blob = case
    data = bytearray(blob)
    for where, xor in flips:
        data[min(len(data) - 1, int(len(data) * where))] ^= xor
    _read_or_refuse(fmt_name, bytes(data))


@SETTINGS
@given(case=st.sampled_from(CASES), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_spliced_files(case, where, junk):
    fmt_name, blob = case
    at = int(len(blob) * where)
    _read_or_refuse(fmt_name, blob[:at] + junk + blob[at:])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/theta-pwned",))


@pytest.mark.parametrize("legacy", [False, True])
def test_pickles_that_run_code_are_refused(legacy, tmp_path):
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "evil": _Evil()}, buf, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ThetaError, match="refus|not allowed|unsafe|forbidden"):
        by_name("pytorch").read(memoryview(buf.getvalue()), "model")
    assert not os.path.exists("/tmp/theta-pwned")
    raw = pickle.dumps({"w": _Evil()})
    _read_or_refuse("pytorch", raw)
    assert not os.path.exists("/tmp/theta-pwned")
