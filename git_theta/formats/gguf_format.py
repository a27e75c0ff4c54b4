"""GGUF files (llama.cpp), read and written by their spec, without the `gguf` package.

A GGUF file is a header (magic, version, key-value metadata, tensor infos), padding to the
alignment, then the tensor data, each tensor aligned. Plain tensors (F32, F16, BF16, F64, I8..I64)
become tensors of the matching dtype. Quantized tensors (Q4_0, Q8_0, Q4_K, IQ*, ...) are kept as
their raw blocks: a uint8 tensor shaped like the logical one with its last axis in bytes; the GGML
type and the logical shape are in the layout, so diffs show `Q4_K[4096, 4096]` and arithmetic
(diff numbers, averaging merges) leaves them alone. The key-values are kept with their exact
types in the layout, with the tensor-info order and any non-zero padding: the file comes back
byte for byte. Little-endian GGUF v2 and v3 only.
"""

import base64
import struct
from collections.abc import Iterable
from typing import BinaryIO

from git_theta import dtypes
from git_theta.errors import CheckpointError
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.tensor import RawTensor, TensorSpec, numel

MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
_MAX_ALIGNMENT = 1 << 24
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_NAME = 1024
_MAX_DEPTH = 3  # arrays of arrays of arrays: more is not a real file
_LIST_LIMIT = 64  # numeric arrays longer than this are kept as base64 of their bytes

# GGML type id -> (name, elements per block, bytes per block, dtype for plain types)
GGML_TYPES: dict[int, tuple[str, int, int, str | None]] = {
    0: ("F32", 1, 4, "float32"), 1: ("F16", 1, 2, "float16"), 2: ("Q4_0", 32, 18, None),
    3: ("Q4_1", 32, 20, None), 6: ("Q5_0", 32, 22, None), 7: ("Q5_1", 32, 24, None),
    8: ("Q8_0", 32, 34, None), 9: ("Q8_1", 32, 40, None), 10: ("Q2_K", 256, 84, None),
    11: ("Q3_K", 256, 110, None), 12: ("Q4_K", 256, 144, None), 13: ("Q5_K", 256, 176, None),
    14: ("Q6_K", 256, 210, None), 15: ("Q8_K", 256, 292, None), 16: ("IQ2_XXS", 256, 66, None),
    17: ("IQ2_XS", 256, 74, None), 18: ("IQ3_XXS", 256, 98, None), 19: ("IQ1_S", 256, 50, None),
    20: ("IQ4_NL", 32, 18, None), 21: ("IQ3_S", 256, 110, None), 22: ("IQ2_S", 256, 82, None),
    23: ("IQ4_XS", 256, 136, None), 24: ("I8", 1, 1, "int8"), 25: ("I16", 1, 2, "int16"),
    26: ("I32", 1, 4, "int32"), 27: ("I64", 1, 8, "int64"), 28: ("F64", 1, 8, "float64"),
    29: ("IQ1_M", 256, 56, None), 30: ("BF16", 1, 2, "bfloat16"), 34: ("TQ1_0", 256, 54, None),
    35: ("TQ2_0", 256, 66, None), 39: ("MXFP4", 32, 17, None), 40: ("NVFP4", 64, 36, None),
    41: ("Q1_0", 128, 18, None),
}  # fmt: skip
_TYPE_ID = {v[0]: k for k, v in GGML_TYPES.items()}
_PLAIN_TYPE = {v[3]: v[0] for v in GGML_TYPES.values() if v[3]}

# GGUF value types: id -> (name, struct code); strings (8) and arrays (9) are handled apart
_SCALARS = {
    0: ("u8", "<B"), 1: ("i8", "<b"), 2: ("u16", "<H"), 3: ("i16", "<h"), 4: ("u32", "<I"),
    5: ("i32", "<i"), 6: ("f32", "<f"), 7: ("bool", "<B"), 10: ("u64", "<Q"), 11: ("i64", "<q"),
    12: ("f64", "<d"),
}  # fmt: skip
_VALUE_ID = {name: k for k, (name, _) in _SCALARS.items()} | {"str": 8, "arr": 9}


def _align(n: int, alignment: int) -> int:
    return n + (-n % alignment)


def _is_quantized(type_name: str) -> bool:
    return GGML_TYPES[_TYPE_ID[type_name]][3] is None


def byte_shape(type_name: str, shape: list[int]) -> tuple[int, ...]:
    """The uint8 shape holding a quantized tensor's blocks: the last axis in bytes."""
    _, block, size, _ = GGML_TYPES[_TYPE_ID[type_name]]
    if not shape:
        raise ValueError(f"a {type_name} tensor needs at least one dimension")
    if shape[-1] % block:
        raise ValueError(f"{type_name} rows of {shape[-1]} elements are not whole blocks of {block}")
    return (*shape[:-1], shape[-1] // block * size)


class _Reader:
    """Bounded little-endian reads from a buffer: every length is checked before use."""

    def __init__(self, data: memoryview):
        self.data, self.pos = data, 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"value of {n} bytes at offset {self.pos} runs past the end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, code: str):
        return struct.unpack(code, self.take(struct.calcsize(code)))[0]

    def string(self) -> bytes:
        return bytes(self.take(self.unpack("<Q")))

    def left(self) -> int:
        return len(self.data) - self.pos


def _text(raw: bytes):
    """A GGUF string as JSON: text when it is UTF-8, else its bytes in base64."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode()}


def _untext(value) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"], validate=True)
    return value.encode("utf-8")


def _scalar_json(name: str, value):
    """Floats that JSON cannot spell exactly (NaN, inf) keep their bits."""
    if name in ("f32", "f64") and (value != value or abs(value) == float("inf")):
        code = "<I" if name == "f32" else "<Q"
        return {"bits": struct.unpack(code, struct.pack(_SCALARS[_VALUE_ID[name]][1], value))[0]}
    return value


def _scalar_bytes(name: str, value) -> bytes:
    code = _SCALARS[_VALUE_ID[name]][1]
    if isinstance(value, dict):
        return struct.pack("<I" if name == "f32" else "<Q", value["bits"])
    return struct.pack(code, value)


def _read_value(r: _Reader, vtype: int, depth: int = 0):
    if vtype in _SCALARS:
        name, code = _SCALARS[vtype]
        return _scalar_json(name, r.unpack(code))
    if vtype == 8:
        return _text(r.string())
    if vtype == 9:
        if depth >= _MAX_DEPTH:
            raise ValueError("arrays nested too deeply")
        etype, count = r.unpack("<I"), r.unpack("<Q")
        if etype in _SCALARS:
            name, code = _SCALARS[etype]
            size = struct.calcsize(code)
            if count * size > r.left():
                raise ValueError(f"array of {count} values runs past the end")
            if count > _LIST_LIMIT:
                return [name, {"b64": base64.b64encode(r.take(count * size)).decode()}]
            return [name, [_read_value(r, etype, depth + 1) for _ in range(count)]]
        if etype not in (8, 9):
            raise ValueError(f"unknown GGUF value type {etype}")
        if count * 8 > r.left():  # every string or array takes at least 8 bytes
            raise ValueError(f"array of {count} values runs past the end")
        name = "str" if etype == 8 else "arr"
        return [name, [_read_value(r, etype, depth + 1) for _ in range(count)]]
    raise ValueError(f"unknown GGUF value type {vtype}")


def _value_bytes(name: str, value) -> bytes:
    if name == "str":
        raw = _untext(value)
        return struct.pack("<Q", len(raw)) + raw
    if name == "arr":
        ename, items = value
        if isinstance(items, dict):
            raw = base64.b64decode(items["b64"], validate=True)
            count = len(raw) // struct.calcsize(_SCALARS[_VALUE_ID[ename]][1])
            return struct.pack("<IQ", _VALUE_ID[ename], count) + raw
        head = struct.pack("<IQ", _VALUE_ID[ename], len(items))
        return head + b"".join(_value_bytes(ename, item) for item in items)
    return _scalar_bytes(name, value)


def _alignment(kvs: list) -> int:
    for key, vname, value in kvs:
        if key == "general.alignment":
            if vname != "u32" or value <= 0 or value & (value - 1) or value > _MAX_ALIGNMENT:
                raise ValueError(f"general.alignment {value!r} ({vname}) is not a power of two as u32")
            return value
    return _DEFAULT_ALIGNMENT


def _header(layout: dict, infos: list[tuple[str, str, list[int], int]]) -> bytes:
    """Magic to the end of the tensor infos; `infos`: (name, GGML type, shape, offset) in file order."""
    kvs = layout["kv"]
    parts = [MAGIC, struct.pack("<IQQ", layout["version"], len(infos), len(kvs))]
    for key, vname, value in kvs:
        parts.append(
            _value_bytes("str", key) + struct.pack("<I", _VALUE_ID[vname]) + _value_bytes(vname, value)
        )
    for name, type_name, shape, offset in infos:
        raw = name.encode("utf-8")
        dims = list(reversed(shape))  # GGUF lists the fastest-moving axis first
        parts.append(struct.pack("<Q", len(raw)) + raw + struct.pack(f"<I{len(dims)}Q", len(dims), *dims))
        parts.append(struct.pack("<IQ", _TYPE_ID[type_name], offset))
    return b"".join(parts)


class GGUFCheckpoint(CheckpointFormat):
    """llama.cpp's GGUF: plain and quantized tensors, key-value metadata kept exactly."""

    name = "gguf"
    extensions = (".gguf",)
    new_files = False  # its metadata (architecture, tokenizer) does not come from tensors

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] == MAGIC

    def encoded_tensors(self, layout: dict) -> dict[str, str]:
        out = {}
        for name, type_name, shape in layout.get("tensors", []):
            if type_name in _TYPE_ID and _is_quantized(type_name):
                out[name] = f"{type_name}[{', '.join(str(s) for s in shape)}]"
        return out

    def read(self, data: memoryview, path: str) -> Checkpoint:
        r = _Reader(data)
        if bytes(r.take(4)) != MAGIC:
            raise CheckpointError("not a GGUF file (no GGUF magic)", path)
        version = r.unpack("<I")
        if version not in (2, 3):
            swapped = struct.unpack(">I", struct.pack("<I", version))[0]
            what = "big-endian GGUF" if swapped in (2, 3) else f"GGUF version {version}"
            raise CheckpointError(f"{what} is not supported (little-endian v2 and v3 are)", path)
        n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
        if n_kv * 12 > r.left() or n_tensors * 24 > r.left():
            raise CheckpointError("corrupt GGUF header (more entries than the file can hold)", path)
        kvs = []
        for _ in range(n_kv):
            key = _text(r.string())
            vtype = r.unpack("<I")
            vname = "str" if vtype == 8 else "arr" if vtype == 9 else _SCALARS.get(vtype, ("?",))[0]
            kvs.append([key, vname, _read_value(r, vtype)])
        alignment = _alignment(kvs)
        infos, seen = [], set()
        for _ in range(n_tensors):
            raw_name = r.string()
            if len(raw_name) > _MAX_NAME:
                raise CheckpointError("a tensor name is longer than 1024 bytes", path)
            name = raw_name.decode("utf-8")
            ndims = r.unpack("<I")
            if ndims > _MAX_DIMS:
                raise CheckpointError(f"tensor {name!r} has {ndims} dimensions (GGUF allows 4)", path)
            dims = [r.unpack("<Q") for _ in range(ndims)]
            type_id, offset = r.unpack("<I"), r.unpack("<Q")
            if type_id not in GGML_TYPES:
                raise CheckpointError(f"tensor {name!r} has unknown GGML type {type_id}", path)
            if name in seen:
                raise CheckpointError(f"tensor {name!r} appears twice", path)
            seen.add(name)
            infos.append((name, GGML_TYPES[type_id][0], list(reversed(dims)), offset))
        header_end = r.pos
        start = _align(header_end, alignment)
        layout = {"version": version, "kv": kvs, "tensors": [[n, t, s] for n, t, s, _ in infos]}
        tensors, spans = self._tensors(data, path, infos, start, alignment)
        if bytes(data[:header_end]) != _header(layout, infos):
            raise CheckpointError("cannot reproduce this GGUF header byte for byte", path)
        gaps, canonical, pos = [], True, header_end
        for begin, end in spans + [(len(data), len(data))]:  # the gap before each tensor, then the tail
            gap = bytes(data[pos:begin])
            expected = _align(pos, alignment) - pos
            canonical = canonical and len(gap) == expected and not any(gap)
            gaps.append(base64.b64encode(gap).decode())
            pos = end
        layout["gaps"] = None if canonical else gaps
        return Checkpoint(tensors, layout)

    def _tensors(self, data, path, infos, start, alignment):
        """The tensors in data order, with their absolute byte spans, checked not to overlap."""
        placed = []
        for name, type_name, shape, offset in infos:
            _, block, size, dtype = GGML_TYPES[_TYPE_ID[type_name]]
            if offset % alignment:
                raise CheckpointError(f"tensor {name!r} is not aligned to {alignment} bytes", path)
            try:
                store_shape = tuple(shape) if dtype else byte_shape(type_name, shape)
            except ValueError as exc:
                raise CheckpointError(f"tensor {name!r}: {exc}", path) from None
            nbytes = numel(store_shape) * (dtypes.get(dtype).itemsize if dtype else 1)
            begin = start + offset
            if begin + nbytes > len(data):
                raise CheckpointError(f"tensor {name!r} runs past the end of the file (truncated?)", path)
            placed.append((begin, begin + nbytes, name, dtype or "uint8", store_shape))
        placed.sort()
        tensors, spans = {}, []
        for i, (begin, end, name, dtype, shape) in enumerate(placed):
            if i and begin < placed[i - 1][1]:
                raise CheckpointError(f"tensor {name!r} overlaps the one before it", path)
            tensors[name] = RawTensor(dtype, shape, data[begin:end])
            spans.append((begin, end))
        return tensors, spans

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        alignment = _alignment(layout["kv"])
        recorded = [name for name, _, _ in layout["tensors"]]
        types, logical = self._plan(layout, specs, path)
        sizes = {s.name: numel(s.shape) * dtypes.get(s.dtype).itemsize for s in specs}
        gaps = layout.get("gaps")
        gaps = gaps if isinstance(gaps, list) and len(gaps) == len(specs) + 1 else None
        probe = _header(layout, [(n, types[n], logical[n], 0) for n in recorded])
        header_len = len(probe)
        start = _align(header_len, alignment)
        # positions in data order: recorded gaps where they still keep tensors aligned
        pads, positions, pos = [], {}, header_len
        for i, spec in enumerate(specs):
            gap = base64.b64decode(gaps[i]) if gaps else b""
            if not gaps or (pos + len(gap) - start) % alignment or pos + len(gap) < start:
                gap = b"\0" * (_align(pos, alignment) - pos)
            pads.append(gap)
            positions[spec.name] = pos + len(gap) - start
            pos += len(gap) + sizes[spec.name]
        tail = base64.b64decode(gaps[-1]) if gaps else b"\0" * (_align(pos, alignment) - pos)
        out.write(_header(layout, [(n, types[n], logical[n], positions[n]) for n in recorded]))
        for pad, tensor in zip(pads, tensors):
            out.write(pad)
            out.write(tensor.data)
        out.write(tail)

    def check_specs(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        self._plan(layout, specs, path)

    def _plan(self, layout: dict, specs: list[TensorSpec], path: str) -> tuple[dict, dict]:
        """Each tensor's GGML type and logical shape; CheckpointError when a tensor does not fit."""
        recorded = {name: (type_name, shape) for name, type_name, shape in layout["tensors"]}
        if set(recorded) != {s.name for s in specs}:
            raise CheckpointError("the GGUF layout names other tensors than the metadata", path)
        types, logical = {}, {}
        for spec in specs:
            type_name, shape = recorded[spec.name]
            types[spec.name] = self._type_for(spec, type_name, shape, path)
            logical[spec.name] = list(shape) if _is_quantized(types[spec.name]) else list(spec.shape)
        return types, logical

    @staticmethod
    def _type_for(spec: TensorSpec, type_name: str, shape: list[int], path: str) -> str:
        """The GGML type to write `spec` as: its recorded quantized type, else its dtype's."""
        if type_name in _TYPE_ID and _is_quantized(type_name):
            if spec.dtype != "uint8" or tuple(spec.shape) != byte_shape(type_name, list(shape)):
                raise CheckpointError(
                    f"{spec.name!r} is {type_name}{list(shape)}: it takes its raw blocks as "
                    f"uint8{list(byte_shape(type_name, list(shape)))}, not {spec.dtype}{list(spec.shape)}",
                    path,
                )
            return type_name
        if spec.dtype not in _PLAIN_TYPE:
            raise CheckpointError(f"dtype {spec.dtype} of {spec.name!r} has no GGUF type", path)
        return _PLAIN_TYPE[spec.dtype]
