"""Fuzzing the HDF5 and .keras readers like the others (test_formats_fuzz.py): truncated,
bit-flipped or spliced files are read or refused with one ThetaError line, never another
exception; what is read is consistent, and writing it back gives the same bytes."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_theta import dtypes
from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name
from git_theta.tensor import TensorSpec, numel

h5py = pytest.importorskip("h5py")

SETTINGS = settings(
    max_examples=int(os.environ.get("GIT_THETA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        g = f.create_group("layers/dense/vars")
        g.attrs["name"] = "dense"
        g["0"] = np.arange(12, dtype=np.float32).reshape(4, 3)
        g["1"] = np.zeros(3, np.float32)
        f["optimizer/vars/0"] = np.int64(1)
        f["text"] = "kept"
    return buf.getvalue()


def _keras() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        z.writestr("model.weights.h5", _h5())
    return buf.getvalue()


CASES = [("hdf5", _h5()), ("keras", _keras())]


def _read_or_refuse(fmt_name: str, blob: bytes) -> None:
    fmt = by_name(fmt_name)
    try:
        checkpoint = fmt.read(memoryview(blob), "model")
    except ThetaError as exc:
        assert len(str(exc)) <= 700 and "\n" not in str(exc)
        return
    for tensor in checkpoint.tensors.values():
        assert len(tensor.data) == numel(tensor.shape) * dtypes.get(tensor.dtype).itemsize
    out = io.BytesIO()
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in checkpoint.tensors.items()]
    fmt.write(checkpoint.layout, specs, list(checkpoint.tensors.values()), out, "model")
    assert out.getvalue() == blob  # whatever is read comes back byte for byte


@pytest.mark.parametrize("fmt_name, blob", CASES, ids=[f for f, _ in CASES])
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
