"""Flax/JAX checkpoints: `flax.serialization.to_bytes` msgpack state dicts, read without JAX.

Arrays are msgpack ext type 1 holding (shape, dtype name, C-order bytes); numpy scalars ext 3;
Python complex numbers ext 2; arrays over 1 GiB are split into flax's chunked form. Nested dicts
become parameter names joined with "/".
"""

import base64
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import msgpack
import numpy as np

from git_theta import dtypes
from git_theta.errors import CheckpointError, ThetaError, shorten
from git_theta.formats import layout as checks
from git_theta.formats.base import Checkpoint, CheckpointFormat, skeleton
from git_theta.tensor import RawTensor, TensorSpec, numel

NDARRAY, NATIVE_COMPLEX, NPSCALAR = 1, 2, 3
MAX_CHUNK_SIZE = 1 << 30  # flax's limit per array chunk
_CHUNKED = "__msgpack_chunked_array__"


class _Array:
    def __init__(self, payload: bytes, scalar: bool):
        shape, name, raw = msgpack.unpackb(payload, raw=False)
        self.shape, self.dtype, self.raw, self.scalar = tuple(shape), str(name), raw, scalar


def _ext_hook(code: int, data: bytes):
    if code == NDARRAY:
        return _Array(data, scalar=False)
    if code == NPSCALAR:
        return _Array(data, scalar=True)
    if code == NATIVE_COMPLEX:
        re, im = msgpack.unpackb(data)
        return complex(re, im)
    raise ValueError(f"unknown msgpack extension type {code}")


def _join(prefix: str | None, key) -> str:
    return str(key) if prefix is None else f"{prefix}/{key}"


class FlaxCheckpoint(CheckpointFormat):
    """`flax.serialization` msgpack files (e.g. Hugging Face `flax_model.msgpack`)."""

    name = "flax"
    aliases = ("flax-checkpoint", "jax")
    extensions = (".msgpack", ".flax")

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        """The layout flax.serialization gives the state dict's nesting (from empty arrays)."""
        from flax.serialization import msgpack_serialize

        empty = skeleton(tree, specs, lambda s: np.zeros(0, dtype=dtypes.get(s.dtype).numpy()))
        return self.layout_of(msgpack_serialize(empty), specs, path)

    def loads(self, data: bytes, path: str) -> Any:
        """The nested dict of arrays flax.serialization.msgpack_restore makes of the file."""
        try:
            from flax.serialization import msgpack_restore
        except ImportError:
            raise ThetaError("loading a Flax checkpoint needs flax: pip install 'git-theta[flax]'") from None
        return msgpack_restore(bytes(data))

    def read(self, data: memoryview, path: str) -> Checkpoint:
        try:
            obj = msgpack.unpackb(bytes(data), ext_hook=_ext_hook, raw=False, strict_map_key=False)
        except Exception as exc:  # any malformed msgpack
            raise CheckpointError(
                f"not a Flax msgpack checkpoint ({type(exc).__name__}: {exc})", path
            ) from None
        tensors: dict[str, RawTensor] = {}

        def tensor(arr: _Array, name: str) -> RawTensor:
            try:
                dt = dtypes.get(arr.dtype)
            except KeyError:
                raise CheckpointError(f"{name}: unsupported dtype {arr.dtype}", path) from None
            if len(arr.raw) != numel(arr.shape) * dt.itemsize:
                raise CheckpointError(f"{name}: array data does not match its shape (truncated?)", path)
            return RawTensor(dt.name, arr.shape, memoryview(arr.raw))

        def node(o, prefix):
            if isinstance(o, _Array):
                name = prefix if prefix is not None else "@"
                tensors[name] = tensor(o, name)
                return {"tensor": name, "scalar": True} if o.scalar else {"tensor": name}
            if isinstance(o, dict):
                if o.get(_CHUNKED) is True:
                    return chunked(o, prefix)
                return {"dict": [[k, node(v, _join(prefix, k))] for k, v in o.items()]}
            if isinstance(o, list):
                return {"list": [node(v, _join(prefix, i)) for i, v in enumerate(o)]}
            if isinstance(o, complex):
                return {"complex": [o.real.hex(), o.imag.hex()]}
            if isinstance(o, float):
                return {"float": o.hex()}
            if isinstance(o, bytes):
                return {"bytes": base64.b64encode(o).decode()}
            if o is None or isinstance(o, (bool, int, str)):
                return o
            raise CheckpointError(f"unsupported value of type {type(o).__name__} in checkpoint", path)

        def chunked(o: dict, prefix) -> dict:
            name = prefix if prefix is not None else "@"
            try:
                shape = tuple(int(o["shape"][str(i)]) for i in range(len(o["shape"])))
                parts = [o["chunks"][str(i)] for i in range(len(o["chunks"]))]
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{name}: malformed chunked array", path) from None
            arr = _Array(
                msgpack.packb(
                    ((sum(numel(p.shape) for p in parts),), parts[0].dtype, b"".join(p.raw for p in parts))
                ),
                False,
            )
            arr.shape = shape
            tensors[name] = tensor(arr, name)
            return {"tensor": name, "chunked": True}

        tree = node(obj, None)
        return Checkpoint(tensors, {"tree": tree})

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        super().check_layout(layout, specs, path)
        tree = layout.get("tree")
        if tree is None:
            return
        found: list[str] = []

        def scalar(v) -> None:  # msgpack holds integers in [-2**63, 2**64)
            if isinstance(v, int) and not isinstance(v, bool) and not -(1 << 63) <= v < 1 << 64:
                raise checks.fail(f"integer {shorten(v)} out of msgpack's range", path)

        def node(n) -> None:
            if n is None or isinstance(n, (bool, int, str, float)):
                scalar(n)
                return
            if not isinstance(n, dict) or len([k for k in n if k not in ("chunked", "scalar")]) != 1:
                raise checks.fail(f"node {shorten(n)}", path)
            if "tensor" in n:
                if not isinstance(n["tensor"], str):
                    raise checks.fail("tensor leaf without a name", path)
                found.append(n["tensor"])
            elif isinstance(n.get("dict"), list):
                for pair in n["dict"]:
                    if not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], (dict, list)):
                        raise checks.fail("dict is not a list of [key, node] pairs", path)
                    scalar(pair[0])
                    node(pair[1])
            elif isinstance(n.get("list"), list):
                for v in n["list"]:
                    node(v)
            elif isinstance(n.get("complex"), list) and len(n["complex"]) == 2:
                for x in n["complex"]:
                    checks.check_float_hex(x, "complex", path)
            elif "float" in n:
                checks.check_float_hex(n["float"], "float", path)
            elif "bytes" in n:
                checks.check_base64(n["bytes"], "bytes", path)
            else:
                raise checks.fail(f"unknown node {shorten(sorted(n))}", path)

        node(tree)
        checks.check_leaves(found, [s.name for s in specs], path, ordered=True)

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        tree = layout.get("tree") or {"dict": [[s.name, {"tensor": s.name}] for s in specs]}
        it = iter(tensors)
        packer = msgpack.Packer(use_bin_type=True)

        def ext(code: int, tensor: RawTensor) -> bytes:
            payload = msgpack.packb((list(tensor.shape), tensor.dtype, bytes(tensor.data)), use_bin_type=True)
            return packer.pack(msgpack.ExtType(code, payload))

        def emit(n) -> None:
            if not isinstance(n, dict):
                out.write(packer.pack(n))
            elif "tensor" in n:
                t = next(it)
                if n.get("chunked") or t.nbytes > MAX_CHUNK_SIZE:
                    emit_chunked(t)
                else:
                    out.write(ext(NPSCALAR if n.get("scalar") else NDARRAY, t))
            elif "dict" in n:
                out.write(packer.pack_map_header(len(n["dict"])))
                for k, v in n["dict"]:
                    out.write(packer.pack(k))
                    emit(v)
            elif "list" in n:
                out.write(packer.pack_array_header(len(n["list"])))
                for v in n["list"]:
                    emit(v)
            elif "complex" in n:
                re, im = (float.fromhex(x) for x in n["complex"])
                out.write(packer.pack(msgpack.ExtType(NATIVE_COMPLEX, msgpack.packb((re, im)))))
            elif "float" in n:
                out.write(packer.pack(float.fromhex(n["float"])))
            elif "bytes" in n:
                out.write(packer.pack(base64.b64decode(n["bytes"])))
            else:
                raise CheckpointError(f"unknown node in Flax checkpoint tree: {sorted(n)}", path)

        def emit_chunked(t: RawTensor) -> None:
            flat = np.frombuffer(t.data, dtype=dtypes.get(t.dtype).numpy())
            step = max(1, MAX_CHUNK_SIZE // dtypes.get(t.dtype).itemsize)
            chunks = [flat[i : i + step] for i in range(0, flat.size, step)]
            out.write(packer.pack_map_header(3))
            out.write(packer.pack(_CHUNKED) + packer.pack(True))
            out.write(packer.pack("shape") + packer.pack({str(i): s for i, s in enumerate(t.shape)}))
            out.write(packer.pack("chunks") + packer.pack_map_header(len(chunks)))
            for i, c in enumerate(chunks):
                out.write(packer.pack(str(i)))
                out.write(ext(NDARRAY, RawTensor.from_numpy(c, t.dtype)))

        emit(tree)
