"""TensorFlow checkpoints (tf.train.Checkpoint, save_weights, SavedModel variables), read without TF.

A TF checkpoint is several files: `PREFIX.index` (a small table naming every tensor with its
dtype, shape and byte range) and `PREFIX.data-0000K-of-0000N` (the bytes). git-theta tracks the
data shards (`git theta track "*.data-*"`): each is split into its tensors using the `.index`
beside it, whose bytes the caller hands over through the format's `siblings` (see
formats.siblings), and rebuilt byte for byte from the metadata alone. The `.index` (and the
`checkpoint` file) stay ordinary small files in git.
"""

import base64
import os
import re
import struct
from collections.abc import Iterable
from typing import BinaryIO

from git_theta import dtypes
from git_theta.errors import CheckpointError
from git_theta.formats import layout as checks
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.formats.protowire import varint as _varint
from git_theta.tensor import RawTensor, TensorSpec, numel

_TABLE_MAGIC = 0xDB4775248B80FB57
_SHARD = re.compile(r"^(.*)\.data-(\d{5})-of-(\d{5})$")
TF_DTYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 8: "complex64",
    9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128", 19: "float16",
    22: "uint32", 23: "uint64", 24: "float8_e5m2", 25: "float8_e4m3fn",
}  # fmt: skip


def _block_entries(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one uncompressed LevelDB table block."""
    block = table[offset : offset + size]
    if len(block) != size or table[offset + size : offset + size + 1] not in (b"\x00",):
        raise ValueError("compressed or truncated table block")
    if size < 4:
        raise ValueError("table block too short for its restart count")
    (restarts,) = struct.unpack_from("<I", block, size - 4)
    end = size - 4 - 4 * restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def read_table(table: bytes) -> list[tuple[bytes, bytes]]:
    """All entries of a LevelDB-format table (the `.index` file), in key order."""
    if len(table) < 48 or struct.unpack_from("<Q", table, len(table) - 8)[0] != _TABLE_MAGIC:
        raise ValueError("not a TensorFlow checkpoint index (bad table magic)")
    footer = table[-48:]
    _, pos = _varint(footer, 0)
    _, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    entries, end = [], 0
    for _, handle in _block_entries(table, index_off, index_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        if off < end:  # blocks follow one another: a block read twice would multiply the work
            raise ValueError("overlapping table blocks")
        entries.extend(_block_entries(table, off, size))
        end = off + size + 5  # the block's trailer: compression type and CRC
    return entries


def parse_entry(value: bytes) -> dict:
    """The fields of a BundleEntryProto we need: dtype, shape, shard_id, offset, size, slices."""
    out = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "sliced": False}
    pos = 0
    while pos < len(value):
        tag, pos = _varint(value, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            v, pos = _varint(value, pos)
            out[{1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}.get(field, "_")] = v
        elif wire == 2:
            n, pos = _varint(value, pos)
            chunk = value[pos : pos + n]
            pos += n
            if field == 2:
                out["shape"] = _shape(chunk)
            elif field == 7:
                out["sliced"] = True
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    return out


def _shape(proto: bytes) -> list[int]:
    dims, pos = [], 0
    while pos < len(proto):
        tag, pos = _varint(proto, pos)
        if tag >> 3 == 2 and tag & 7 == 2:
            n, pos = _varint(proto, pos)
            dim, p = proto[pos : pos + n], 0
            size = 0
            while p < len(dim):
                t, p = _varint(dim, p)
                if t >> 3 == 1 and t & 7 == 0:
                    size, p = _varint(dim, p)
                elif t & 7 == 2:
                    m, p = _varint(dim, p)
                    p += m
                else:
                    _, p = _varint(dim, p)
            dims.append(size)
            pos += n
        elif tag & 7 == 0:
            _, pos = _varint(proto, pos)
        elif tag & 7 == 2:
            n, pos = _varint(proto, pos)
            pos += n
        else:
            raise ValueError("bad TensorShapeProto")
    return dims


def index_entries(index: bytes, index_name: str, path: str) -> list[tuple[bytes, dict]]:
    """(tensor name, parsed BundleEntryProto) of every tensor in the bytes of a checkpoint's
    `.index` file `index_name`; a one-line CheckpointError naming the shard `path` when malformed."""
    try:
        entries = read_table(index)
    except (ValueError, struct.error, IndexError) as exc:
        raise CheckpointError(f"corrupt checkpoint index {index_name} ({exc})", path) from None
    out = []
    for key, value in entries:
        if not key:
            continue  # the bundle header
        try:
            out.append((key, parse_entry(value)))
        except (ValueError, IndexError) as exc:
            raise CheckpointError(f"corrupt index entry for {key!r} ({exc})", path) from None
    return out


class TensorFlowCheckpoint(CheckpointFormat):
    """A data shard of a TensorFlow checkpoint, split by the `.index` beside it."""

    name = "tensorflow"
    aliases = ("tf", "tensorflow-checkpoint", "tf-savedmodel", "tensorflow-savedmodel")
    extensions = ()
    new_files = False  # a shard needs its .index, which tensors alone do not give

    @classmethod
    def claims_path(cls, path: str) -> bool:
        return bool(_SHARD.match(os.path.basename(path)))

    def read(self, data: memoryview, path: str) -> Checkpoint:
        m = _SHARD.match(os.path.basename(path))
        if not m:
            raise CheckpointError(
                "TensorFlow checkpoints are tracked by their data shards (PREFIX.data-00000-of-00001)", path
            )
        index_name = m.group(1) + ".index"
        index_path = path[: len(path) - len(os.path.basename(path))] + index_name  # as the caller names files
        index = self.siblings.get(index_name)
        if index is None:
            raise CheckpointError(
                f"the checkpoint index {index_path} is missing beside the data shard; save the whole checkpoint",
                path,
            )
        ranges = []
        for key, e in index_entries(index, index_path, path):
            if e["shard_id"] == int(m.group(2)) and e["size"]:
                ranges.append((e["offset"], e["size"], key.decode("utf-8", "replace"), e))
        ranges.sort()
        tensors: dict[str, RawTensor] = {}
        segments: list = []
        pos = 0
        for offset, size, name, e in ranges:
            if offset < pos or offset + size > len(data):
                raise CheckpointError(
                    f"tensor {name!r} lies outside the data shard (index and data do not match?)", path
                )
            if offset > pos:
                segments.append({"raw": base64.b64encode(bytes(data[pos:offset])).decode()})
            dtype = TF_DTYPES.get(e["dtype"])
            shape = tuple(e["shape"])
            if dtype and not e["sliced"] and numel(shape) * dtypes.get(dtype).itemsize == size:
                tensors[name] = RawTensor(dtype, shape, data[offset : offset + size])
                segments.append({"tensor": name})
            else:  # strings (the object graph), slices: kept as bytes
                segments.append(
                    {"raw": base64.b64encode(bytes(data[offset : offset + size])).decode(), "key": name}
                )
            pos = offset + size
        if pos < len(data):
            segments.append({"raw": base64.b64encode(bytes(data[pos:])).decode()})
        return Checkpoint(tensors, {"segments": segments})

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        super().check_layout(layout, specs, path)
        segments = layout.get("segments")
        if segments is None:
            return
        if not isinstance(segments, list) or not all(isinstance(s, dict) for s in segments):
            raise checks.fail("segments is not a list of maps", path)
        found = []
        for seg in segments:
            if "tensor" in seg and isinstance(seg["tensor"], str):
                found.append(seg["tensor"])
            elif "raw" in seg:
                checks.check_base64(seg["raw"], "raw segment", path)
            else:
                raise checks.fail("a segment is neither a tensor nor raw bytes", path)
        checks.check_leaves(found, [s.name for s in specs], path, ordered=True)

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        it = iter(tensors)
        for seg in layout.get("segments", [{"tensor": s.name} for s in specs]):
            if "tensor" in seg:
                out.write(next(it).data)
            else:
                out.write(base64.b64decode(seg["raw"]))
