"""ONNX models: initializers as tensors, read at the protobuf wire level without importing onnx.

Two kinds of file are "the file", as TensorFlow's data shards are:

- a model (`model.onnx`) whose initializers are inline (`raw_data`, or packed `float_data` /
  `double_data`): each such initializer is a tensor; everything else (the graph, initializers
  stored as varints, strings or sub-byte types, external-data references) stays in the layout
  as the bytes between the tensors, so the file comes back byte for byte;
- an external-data file (`model.onnx.data`, written by `onnx.save(..., save_as_external_data=True)`):
  split into the initializers that the `.onnx` model beside it places there (by `location`,
  `offset`, `length`), and rebuilt byte for byte from the metadata alone. The `.onnx` stays an
  ordinary small file in git.

A changed initializer keeps its dtype and shape (the graph names them); changing either is
refused with a one-line error: save the model with onnx instead.
"""

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from git_theta import dtypes
from git_theta.errors import CheckpointError
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.formats.protowire import varint as _varint
from git_theta.tensor import RawTensor, TensorSpec, numel

ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2",
    20: "float8_e5m2fnuz", 24: "float8_e8m0fnu",
}  # fmt: skip
_DATA_FIELDS = {3, 4, 5, 6, 7, 9, 10, 11}  # segment and every way of holding values
_PACKED_OK = {4: (1, 14), 10: (11, 15)}  # float_data, double_data: raw little-endian for these
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0x7A}  # ModelProto fields 2..8, 14, 15
_MAX_MODEL = 2 << 30  # protobuf's own limit: a larger file beside a data file is not a model
EXTERNAL_SUFFIXES = (".onnx.data", ".onnx_data", ".onnx.weights", ".onnx.weight")


def _fields(buf, start: int, end: int):
    """(field number, wire type, value start, value end, varint value) of each field in buf[start:end]."""
    pos = start
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, after = _varint(buf, pos, end)
        elif wire in (1, 5):
            value, after = None, pos + (8 if wire == 1 else 4)
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            value, after = None, pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if after > end or number == 0:
            raise ValueError("protobuf field runs past its message")
        yield number, wire, pos, after, value
        pos = after


@dataclass
class _Initializer:
    """What git-theta needs of one TensorProto."""

    name: str = ""
    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    data: list[tuple[int, int, int, int]] = field(default_factory=list)  # (field, wire, start, end)
    external: dict[str, str] = field(default_factory=dict)
    location: int = 0

    def inline_span(self) -> tuple[int, int] | None:
        """The byte range holding this initializer's raw little-endian values, if it has one."""
        if self.location != 0 or len(self.data) != 1 or self.data_type not in ONNX_DTYPES:
            return None
        number, wire, start, end = self.data[0]
        if wire != 2 or not (number == 9 or self.data_type in _PACKED_OK.get(number, ())):
            return None
        return (start, end) if end - start == self.nbytes else None

    @property
    def nbytes(self) -> int:
        return numel(self.dims) * dtypes.get(ONNX_DTYPES[self.data_type]).itemsize


def _initializer(buf, start: int, end: int) -> _Initializer:
    init = _Initializer()
    for number, wire, s, e, value in _fields(buf, start, end):
        if number == 1 and wire == 0:
            init.dims.append(value)
        elif number == 1 and wire == 2:
            pos = s
            while pos < e:
                dim, pos = _varint(buf, pos, e)
                init.dims.append(dim)
        elif number == 2 and wire == 0:
            init.data_type = value
        elif number == 8 and wire == 2:
            init.name = bytes(buf[s:e]).decode("utf-8")
        elif number == 14 and wire == 0:
            init.location = value
        elif number == 13 and wire == 2:
            entry = {k: bytes(buf[ks:ke]).decode("utf-8") for k, w, ks, ke, _ in _fields(buf, s, e) if w == 2}
            init.external[entry.get(1, "")] = entry.get(2, "")
        elif number in _DATA_FIELDS:
            init.data.append((number, wire, s, e))
    if any(d >= 1 << 62 for d in init.dims) or len(init.dims) > 64:
        raise ValueError(f"initializer {init.name!r} has an absurd shape")
    return init


def initializers(buf) -> list[tuple[_Initializer, int, int]]:
    """The main graph's initializers with their byte ranges (ModelProto.graph.initializer)."""
    out = []
    for number, wire, s, e, _ in _fields(buf, 0, len(buf)):
        if number == 7 and wire == 2:
            for gnum, gwire, gs, ge, _ in _fields(buf, s, e):
                if gnum == 5 and gwire == 2:
                    out.append((_initializer(buf, gs, ge), gs, ge))
    return out


def _b64(raw) -> str:
    return base64.b64encode(bytes(raw)).decode()


def _cut(data, spans: list[tuple[int, int, str, str, tuple]], path: str) -> Checkpoint:
    """Tensors at `spans` (start, end, name, dtype, shape); the bytes between them as raw segments."""
    tensors: dict[str, RawTensor] = {}
    segments: list[dict] = []
    pos = 0
    for start, end, name, dtype, shape in sorted(spans):
        if start < pos or end > len(data):
            raise CheckpointError(f"initializer {name!r} overlaps another or runs past the end", path)
        if name in tensors:
            raise CheckpointError(f"initializer {name!r} appears twice", path)
        if start > pos:
            segments.append({"raw": _b64(data[pos:start])})
        tensors[name] = RawTensor(dtype, shape, data[start:end])
        segments.append({"tensor": name, "dtype": dtype, "shape": list(shape)})
        pos = end
    if pos < len(data):
        segments.append({"raw": _b64(data[pos:])})
    return Checkpoint(tensors, {"segments": segments})


class ONNXCheckpoint(CheckpointFormat):
    """ONNX models with inline initializers, and ONNX external-data files."""

    name = "onnx"
    extensions = (".onnx",)
    new_files = False  # the graph around the weights does not come from tensors

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """ir_version first (field 1, 3..15), then another ModelProto field: protobuf has no magic."""
        if len(head) < 3 or head[0] != 0x08 or not 3 <= head[1] <= 15:
            return False
        return head[2] in _MODEL_TAGS

    @classmethod
    def claims_path(cls, path: str) -> bool:
        return path.lower().endswith(cls.extensions + EXTERNAL_SUFFIXES)

    def read(self, data: memoryview, path: str) -> Checkpoint:
        model = None if path.lower().endswith(".onnx") else self._model_of(path)
        if model is not None:
            return self._read_external(data, path, *model)
        try:
            found = initializers(data)
        except ValueError:
            if path.lower().endswith(".onnx"):
                raise
            raise CheckpointError(
                "not an ONNX model, and no .onnx model beside it keeps initializers in it "
                "(an external-data file is read with its model: keep the .onnx beside it)",
                path,
            ) from None
        spans = []
        for init, _, _ in found:
            span = init.inline_span() if init.name else None
            if span:
                spans.append((*span, init.name, ONNX_DTYPES[init.data_type], tuple(init.dims)))
        checkpoint = _cut(data, spans, path)
        checkpoint.layout["kind"] = "model"
        return checkpoint

    @staticmethod
    def _model_of(path: str) -> tuple[str, list[_Initializer]] | None:
        """The `.onnx` beside `path` that places initializers in it, with those initializers."""
        folder, base = os.path.split(path)
        try:
            names = sorted(n for n in os.listdir(folder or ".") if n.lower().endswith(".onnx"))
        except OSError:
            return None
        for name in names:
            full = os.path.join(folder, name)
            try:
                if os.path.getsize(full) > _MAX_MODEL:
                    continue
                with open(full, "rb") as f:
                    found = [i for i, _, _ in initializers(memoryview(f.read()))]
            except (OSError, ValueError):
                continue  # not a model (metadata of an unsmudged one, say): look further
            mine = [
                i
                for i in found
                if i.location == 1 and os.path.normpath(i.external.get("location", "")) == base
            ]
            if mine:
                return name, mine
        return None

    def _read_external(self, data, path: str, model: str, inits: list[_Initializer]) -> Checkpoint:
        spans = []
        for init in inits:
            if init.data_type not in ONNX_DTYPES or not init.name:
                continue  # strings, sub-byte types: kept as bytes
            offset = int(init.external.get("offset", "0") or 0)
            length = int(init.external.get("length", "") or init.nbytes)
            if length != init.nbytes or offset < 0:
                raise CheckpointError(
                    f"initializer {init.name!r}: {length} bytes in the data file, its shape needs {init.nbytes}",
                    path,
                )
            spans.append((offset, offset + length, init.name, ONNX_DTYPES[init.data_type], tuple(init.dims)))
        checkpoint = _cut(data, spans, path)
        checkpoint.layout.update(kind="external", model=model)
        return checkpoint

    def check_specs(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        recorded = {s["tensor"]: s for s in layout.get("segments", []) if "tensor" in s}
        if set(recorded) != {s.name for s in specs}:
            raise CheckpointError("the ONNX layout names other initializers than the metadata", path)
        for spec in specs:
            seg = recorded[spec.name]
            if spec.dtype != seg["dtype"] or list(spec.shape) != list(seg["shape"]):
                raise CheckpointError(
                    f"initializer {spec.name!r} is {seg['dtype']}{list(seg['shape'])} in the ONNX graph, "
                    f"not {spec.dtype}{list(spec.shape)}: change its dtype or shape by saving the model with onnx",
                    path,
                )

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        self.check_specs(layout, specs, path)
        order = [s["tensor"] for s in layout["segments"] if "tensor" in s]
        if order != [s.name for s in specs]:
            raise CheckpointError("the ONNX layout orders its initializers unlike the metadata", path)
        it = iter(tensors)
        for seg in layout["segments"]:
            out.write(next(it).data if "tensor" in seg else base64.b64decode(seg["raw"]))
