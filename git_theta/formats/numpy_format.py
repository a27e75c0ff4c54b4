"""NumPy `.npy` arrays and `.npz` archives, read without unpickling anything.

A `.npy` file holds one parameter (named "array"); an `.npz` holds one per member, named as
`np.savez` named them. Fortran-ordered and big-endian arrays are stored as C-ordered
little-endian tensors and written back as they came; `np.savez_compressed` archives stay compressed.
"""

import ast
import io
import struct
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import numpy as np

from git_theta import dtypes
from git_theta.errors import CheckpointError, shorten
from git_theta.formats import layout as checks
from git_theta.formats import zipio
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.tensor import RawTensor, TensorSpec

MAGIC = b"\x93NUMPY"
SINGLE = "array"


def parse_npy(data: memoryview, path: str, name: str) -> tuple[RawTensor, dict]:
    """One .npy payload -> (C-ordered little-endian tensor, how to write it back)."""
    major, dt, fortran, shape, start, descr = _header(data, path, name)
    body = data[start:]
    count = 1
    for s in shape:
        count *= s
    if len(body) < count * dt.itemsize:
        raise CheckpointError(f"{name}: truncated .npy data", path)
    arr = np.frombuffer(body, dtype=dt, count=count)
    arr = arr.reshape(shape, order="F" if fortran else "C") if shape else arr.reshape(())
    native = arr.astype(dt.newbyteorder("<"), copy=False) if dt.byteorder == ">" else arr
    try:
        kind = dtypes.from_numpy(native.dtype)
    except KeyError:
        raise CheckpointError(f"{name}: unsupported dtype {dt}", path) from None
    tensor = RawTensor.from_numpy(native, kind.name)
    return tensor, {"descr": descr, "fortran_order": fortran, "version": major}


def _header(data, path: str, name: str) -> tuple[int, np.dtype, bool, tuple[int, ...], int, object]:
    """(major version, dtype, fortran order, shape, where the data starts, descr as written)."""
    if bytes(data[:6]) != MAGIC or len(data) < 10:
        raise CheckpointError(f"{name}: not a .npy array (bad magic)", path)
    major = data[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise CheckpointError(f"{name}: unsupported .npy version {major}", path)
    if start + hlen > len(data) or hlen > 1 << 16:
        raise CheckpointError(f"{name}: truncated or oversized .npy header", path)
    try:
        header = ast.literal_eval(bytes(data[start : start + hlen]).decode("latin1"))
        descr, fortran = header["descr"], bool(header["fortran_order"])
        shape = tuple(int(s) for s in header["shape"])
        dt = np.dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        raise CheckpointError(f"{name}: corrupt .npy header", path) from None
    if dt.hasobject or dt.fields is not None:
        raise CheckpointError(
            f"{name}: object or structured arrays are not weights (refusing to unpickle)", path
        )
    if any(s < 0 for s in shape) or len(shape) > 64:
        raise CheckpointError(f"{name}: bad .npy shape", path)
    return major, dt, fortran, shape, start + hlen, descr


def _claimed_size(member: str, head: bytes) -> int | None:
    """The exact size of an .npz member: its header plus the array its header claims."""
    if not member.endswith(".npy"):
        return None
    _, dt, _, shape, start, _ = _header(head, member, member[:-4])
    count = 1
    for s in shape:
        count *= s
    return start + count * dt.itemsize


def write_npy(tensor: RawTensor, how: dict) -> bytes:
    """The .npy bytes for a tensor, in its original dtype spelling, memory order and version."""
    arr = tensor.numpy().astype(np.dtype(how.get("descr", tensor.numpy().dtype.str)), copy=False)
    if how.get("fortran_order"):
        arr = np.asfortranarray(arr)
    buf = io.BytesIO()
    version = int(how.get("version", 1))
    np.lib.format.write_array(buf, arr, version=(version, 0), allow_pickle=False)
    return buf.getvalue()


class NumpyCheckpoint(CheckpointFormat):
    """`.npy` (one array) and `.npz` (named arrays, stored or deflated)."""

    name = "numpy"
    aliases = ("npy", "npz")
    extensions = (".npy", ".npz")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if head.startswith(b"PK\x03\x04") and len(head) >= 30:  # an .npz whose first member is visible
            (nlen,) = struct.unpack_from("<H", head, 26)
            return head[30 : 30 + nlen].endswith(b".npy")
        return head.startswith(MAGIC)

    @classmethod
    def claims_path(cls, path: str) -> bool:
        return path.lower().endswith(cls.extensions)

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        """The layout np.savez gives these arrays (by flat name)."""
        buf = io.BytesIO()
        np.savez(buf, **{s.name: np.zeros(0, dtype=dtypes.get(s.dtype).numpy()) for s in specs})
        return self.layout_of(buf.getvalue(), specs, path)

    def loads(self, data: bytes, path: str) -> Any:
        """What np.load makes of the file: a dict of arrays (.npz) or one array (.npy)."""
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        return dict(loaded) if hasattr(loaded, "files") else loaded

    def read(self, data: memoryview, path: str) -> Checkpoint:
        if bytes(data[:6]) == MAGIC:
            tensor, how = parse_npy(data, path, SINGLE)
            return Checkpoint({SINGLE: tensor}, {"container": "npy", "arrays": {SINGLE: how}})
        if bytes(data[:4]) != b"PK\x03\x04":
            raise CheckpointError("not a NumPy .npy or .npz file", path)
        tensors, arrays = {}, {}
        entries = zipio.members(data, path, _claimed_size)
        for member, _, content in entries:
            if not member.endswith(".npy"):
                raise CheckpointError(f".npz member {member} is not an array", path)
            name = member[:-4]
            tensors[name], arrays[name] = parse_npy(content, path, name)
        compressed = any(method == zipfile.ZIP_DEFLATED for _, method, _ in entries)
        return Checkpoint(tensors, {"container": "npz", "compressed": compressed, "arrays": arrays})

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        super().check_layout(layout, specs, path)
        container = layout.get("container", "npz")
        arrays = layout.get("arrays", {})
        if container not in ("npy", "npz") or not isinstance(arrays, dict):
            raise checks.fail(f"container {shorten(container)} or its arrays", path)
        if container == "npy" and [s.name for s in specs] != [SINGLE]:
            raise checks.fail("an .npy file holds exactly one array", path)
        if not isinstance(layout.get("compressed", False), bool):
            raise checks.fail("compressed is not true/false", path)
        for spec in specs:
            how = arrays.get(spec.name, {})
            if not isinstance(how, dict) or how.get("version", 1) not in (1, 2, 3):
                raise checks.fail(f"array {spec.name!r:.60}: bad version", path)
            if not isinstance(how.get("fortran_order", False), bool):
                raise checks.fail(f"array {spec.name!r:.60}: fortran_order is not true/false", path)
            if "descr" in how:
                # the stored bits are written as they are: the descr may only change byte order
                try:
                    ok = isinstance(how["descr"], str) and np.dtype(how["descr"]).newbyteorder(
                        "<"
                    ) == dtypes.get(spec.dtype).numpy().newbyteorder("<")
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise checks.fail(f"array {spec.name!r:.60}: descr {shorten(how['descr'])}", path)

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        arrays = layout.get("arrays", {})
        if layout.get("container") == "npy":
            (tensor,) = list(tensors)
            out.write(write_npy(tensor, arrays.get(SINGLE, {})))
            return
        method = zipfile.ZIP_DEFLATED if layout.get("compressed") else zipfile.ZIP_STORED
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as zf:
            for spec, tensor in zip(specs, tensors):
                info = zipfile.ZipInfo(spec.name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                zf.writestr(info, write_npy(tensor, arrays.get(spec.name, {})))
        out.write(buf.getvalue())
