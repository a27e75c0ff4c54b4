"""Fuzzing the GGUF (and ONNX) readers as tests/fuzz/test_formats_fuzz.py does the others:
truncated, bit-flipped or spliced files are read or refused with a one-line error; a GGUF file
that is read is also written back byte for byte."""

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name
from git_theta.tensor import TensorSpec
from tests.fuzz.test_formats_fuzz import SETTINGS, _read_or_refuse


def _gguf(tmp_dir) -> bytes:
    from tests import ggufs

    path = f"{tmp_dir}/m.gguf"
    ggufs.write(path, {n: v for n, v in list(ggufs.small_llm().items())[:5]})
    return open(path, "rb").read()


def _onnx(tmp_dir) -> bytes:
    from tests import onnxs

    path = f"{tmp_dir}/m.onnx"
    onnxs.save(path, onnxs.weights())
    return open(path, "rb").read()


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list:
    pytest.importorskip("gguf")
    pytest.importorskip("onnx")
    return [
        ("gguf", _gguf(tmp_path_factory.mktemp("gguf"))),
        ("onnx", _onnx(tmp_path_factory.mktemp("onnx"))),
    ]


def _read_or_refuse_exactly(fmt_name: str, blob: bytes) -> None:
    _read_or_refuse(fmt_name, blob)  # the checks every reader passes (one line, consistent tensors)
    fmt = by_name(fmt_name)
    try:
        ck = fmt.read(memoryview(blob), "model.onnx" if fmt_name == "onnx" else "model")
    except ThetaError:
        return
    out = io.BytesIO()
    fmt.write(
        ck.layout,
        [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()],
        ck.tensors.values(),
        out,
        "m",
    )
    assert out.getvalue() == blob  # both formats keep every byte they do not parse


@SETTINGS
@given(index=st.integers(0, 10), cut=st.floats(0, 1))
def test_truncated(cases, index, cut):
    fmt_name, blob = cases[index % len(cases)]
    _read_or_refuse_exactly(fmt_name, blob[: int(len(blob) * cut)])


@SETTINGS
@given(
    index=st.integers(0, 10),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_bit_flipped(cases, index, flips):
    fmt_name, blob = cases[index % len(cases)]
    data = bytearray(blob)
    for where, xor in flips:
        data[min(len(data) - 1, int(len(data) * where))] ^= xor
    _read_or_refuse_exactly(fmt_name, bytes(data))


@SETTINGS
@given(index=st.integers(0, 10), where=st.floats(0, 1), junk=st.binary(min_size=1, max_size=64))
def test_spliced(cases, index, where, junk):
    fmt_name, blob = cases[index % len(cases)]
    at = int(len(blob) * where)
    _read_or_refuse_exactly(fmt_name, blob[:at] + junk + blob[at:])
