"""records.Record: the value semantics ParamEntry, Metadata and RawTensor had as dataclasses."""

import pytest

from git_theta.metadata import Metadata, ParamEntry
from git_theta.tensor import RawTensor


def _entry(**changes) -> ParamEntry:
    return ParamEntry("float32", (2, 3), "h" * 64, "a" * 64, 10).replace(**changes)


def test_equal_by_value_shown_by_fields_and_unhashable():
    assert _entry() == _entry() and _entry() != _entry(size=11) and _entry() != "x"
    assert repr(_entry()).startswith("ParamEntry(dtype='float32', shape=(2, 3), hash='hhhh")
    assert _entry().extra == {} and _entry().extra is not _entry().extra  # no shared default
    with pytest.raises(TypeError):
        hash(_entry())


def test_metadata_compares_without_its_source_bytes():
    a = Metadata("safetensors", {}, {"w": _entry()}, source=b"one")
    b = Metadata("safetensors", {}, {"w": _entry()}, source=b"two")
    assert a == b and "source" not in repr(a) and a != Metadata("pytorch", {}, {"w": _entry()})


def test_raw_tensors_compare_their_bytes():
    one = RawTensor("float32", (1,), memoryview(b"\0\0\x80?"))
    assert one == RawTensor("float32", (1,), memoryview(bytearray(b"\0\0\x80?")))
    assert one != RawTensor("float32", (1,), memoryview(b"\0\0\0@"))
