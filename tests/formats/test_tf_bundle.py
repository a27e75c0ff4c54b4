"""The TensorFlow checkpoint index parser and shard reader, on files the real TensorFlow wrote
(when it is installed) and on tables built here, truncated and hostile ones included."""

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats.detect import by_name
from git_theta.formats.siblings import FolderSiblings, beside
from git_theta.formats.tf_bundle import index_entries, read_table
from git_theta.tensor import TensorSpec

SHARD = "model.data-00000-of-00001"
SAVE = """
import sys, numpy as np, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        self.kernel = tf.Variable(np.arange(24, dtype=np.float32).reshape(6, 4))
        self.bias = tf.Variable(tf.ones(4, dtype=tf.bfloat16))
        self.step = tf.Variable(7, dtype=tf.int64)
tf.train.Checkpoint(model=M()).write(sys.argv[1])
"""


def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _entry(dtype: int, shape: tuple[int, ...], offset: int, size: int) -> bytes:
    """A BundleEntryProto: dtype, shape (TensorShapeProto dims), shard 0, offset, size."""
    dims = b"".join(_field(2, _field(1, d)) for d in shape)
    return _field(1, dtype) + _field(2, dims) + _field(3, 0) + _field(4, offset) + _field(5, size)


def _block(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """An uncompressed LevelDB block (no shared key prefixes, one restart point) and its trailer."""
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in pairs)
    body += struct.pack("<II", 0, 1)
    return body + b"\x00" + struct.pack("<I", zlib.crc32(body))


def _table(pairs: list[tuple[bytes, bytes]], handles: int = 1) -> bytes:
    """A table of one data block, named `handles` times by its index block (more than once: hostile)."""
    data = _block(pairs)
    handle = _varint(0) + _varint(len(data) - 5)
    index = _block([(pairs[-1][0] + bytes([i]), handle) for i in range(handles)])
    footer = _varint(len(data)) + _varint(0) + _varint(len(data)) + _varint(len(index) - 5)
    return data + index + footer.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)


def _bundle() -> tuple[bytes, bytes]:
    """(index, shard) of a checkpoint of two tensors, an int64 scalar then a float32 [2, 3]."""
    step, kernel = np.int64(7).tobytes(), np.arange(6, dtype=np.float32).tobytes()
    index = _table(
        [(b"", b""), (b"kernel", _entry(1, (2, 3), 8, len(kernel))), (b"step", _entry(9, (), 0, 8))]
    )
    return index, step + kernel


def test_a_built_table_parses_to_its_entries():
    index, shard = _bundle()
    entries = dict(index_entries(index, "model.index", SHARD))
    assert entries[b"kernel"]["shape"] == [2, 3] and entries[b"kernel"]["offset"] == 8
    assert entries[b"step"]["dtype"] == 9 and entries[b"step"]["shape"] == []
    checkpoint = by_name("tensorflow", {"model.index": index}).read(memoryview(shard), SHARD)
    assert list(checkpoint.tensors) == ["step", "kernel"]
    assert checkpoint.tensors["kernel"].numpy().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_companion_bytes_come_from_the_siblings_reader_not_the_current_directory(tmp_path, monkeypatch):
    index, shard = _bundle()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.index").write_bytes(index)
    (folder / SHARD).write_bytes(shard)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.index").write_bytes(b"not an index")  # what a cwd-relative open would find
    monkeypatch.chdir(elsewhere)
    path = os.path.join("ckpt", SHARD)
    for siblings in (FolderSiblings(str(folder)), beside(path, str(tmp_path))):
        assert list(by_name("tensorflow", siblings).read(memoryview(shard), path).tensors) == [
            "step",
            "kernel",
        ]
    with pytest.raises(CheckpointError, match="index ckpt/model.index is missing"):
        by_name("tensorflow").read(memoryview(shard), "ckpt/" + SHARD)  # no siblings given: none read


@pytest.mark.parametrize("cut", [0, 1, 20, 47, 48, -49, -9, -1])
def test_truncated_index_is_a_clear_error(cut):
    index, _ = _bundle()
    with pytest.raises(CheckpointError, match=f"{SHARD}: corrupt checkpoint index model.index"):
        index_entries(index[:cut], "model.index", SHARD)


def test_hostile_indexes_are_one_line_errors():
    index, shard = _bundle()
    footer = len(index) - 48
    bad_magic = index[:-1] + b"\x00"
    past_end = (
        index[:footer] + (_varint(0) * 2 + _varint(1 << 40) + _varint(9)).ljust(40, b"\x00") + index[-8:]
    )
    empty_block = index[:footer] + (_varint(0) * 4).ljust(40, b"\x00") + index[-8:]
    loop = _table([(b"", b""), (b"step", _entry(9, (), 0, 8))], handles=3)  # one block, named 3 times
    cases = [
        (bad_magic, "bad table magic"),
        (past_end, "truncated"),
        (empty_block, "too short"),
        (loop, "overlapping"),
    ]
    for table, why in cases:
        with pytest.raises(CheckpointError, match=why):
            index_entries(table, "model.index", SHARD)
    outside = _table([(b"", b""), (b"w", _entry(1, (4,), 1 << 30, 16))])
    with pytest.raises(CheckpointError, match="'w' lies outside the data shard"):
        by_name("tensorflow", {"model.index": outside}).read(memoryview(shard), SHARD)
    bad_entry = _table([(b"", b""), (b"w", b"\x0f\x00")])  # wire type 7 does not exist
    with pytest.raises(CheckpointError, match="corrupt index entry for b'w'"):
        index_entries(bad_entry, "model.index", SHARD)


def test_every_flipped_byte_parses_or_is_a_checkpoint_error():
    index, _ = _bundle()
    for i in range(len(index)):
        flipped = index[:i] + bytes([index[i] ^ 0xFF]) + index[i + 1 :]
        try:
            index_entries(flipped, "model.index", SHARD)
        except CheckpointError as exc:
            assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def tf_checkpoint(tmp_path_factory):
    """A checkpoint written by the real TensorFlow: (its folder, the index bytes, the shard bytes)."""
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("tf")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [sys.executable, "-c", SAVE, str(folder / "model")], env=env, check=True, capture_output=True
    )
    return folder, (folder / "model.index").read_bytes(), (folder / SHARD).read_bytes()


def test_index_written_by_tensorflow(tf_checkpoint):
    _, index, _ = tf_checkpoint
    assert [key for key, _ in read_table(index)][0] == b""  # the bundle header comes first
    entries = {key.decode(): e for key, e in index_entries(index, "model.index", SHARD)}
    kernel = entries["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    assert (kernel["dtype"], kernel["shape"], kernel["size"]) == (1, [6, 4], 96)
    bias, step = (
        entries["model/bias/.ATTRIBUTES/VARIABLE_VALUE"],
        entries["model/step/.ATTRIBUTES/VARIABLE_VALUE"],
    )
    assert (bias["dtype"], bias["shape"], step["dtype"], step["shape"]) == (14, [4], 9, [])


def test_shard_written_by_tensorflow_read_from_another_directory(tf_checkpoint, tmp_path, monkeypatch):
    folder, _, shard = tf_checkpoint
    monkeypatch.chdir(tmp_path)
    fmt = by_name("tensorflow", FolderSiblings(str(folder)))
    checkpoint = fmt.read(memoryview(shard), SHARD)
    kernel = checkpoint.tensors["model/kernel/.ATTRIBUTES/VARIABLE_VALUE"].numpy()
    assert kernel.tolist() == np.arange(24, dtype=np.float32).reshape(6, 4).tolist()
    assert checkpoint.tensors["model/step/.ATTRIBUTES/VARIABLE_VALUE"].numpy() == 7
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in checkpoint.tensors.items()]
    out = io.BytesIO()
    fmt.write(checkpoint.layout, specs, checkpoint.tensors.values(), out, SHARD)
    assert out.getvalue() == shard  # rebuilt byte for byte


@pytest.mark.parametrize("cut", [0.0, 0.3, 0.7, 0.99])
def test_truncated_tensorflow_index_is_a_clear_error(tf_checkpoint, cut):
    _, index, shard = tf_checkpoint
    with pytest.raises(CheckpointError, match="corrupt checkpoint index model.index"):
        by_name("tensorflow", {"model.index": index[: int(len(index) * cut)]}).read(memoryview(shard), SHARD)
