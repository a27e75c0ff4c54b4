"""safetensors files, read and written by their spec (8-byte header length, JSON header, data)."""

import json
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO

from git_theta import dtypes
from git_theta.errors import CheckpointError
from git_theta.formats import layout as checks
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.tensor import RawTensor, TensorSpec, numel

_MAX_HEADER = 100_000_000


class SafetensorsCheckpoint(CheckpointFormat):
    """Hugging Face safetensors: tensors in data order, the `__metadata__` header kept as is."""

    name = "safetensors"
    aliases = ("safetensors-checkpoint",)
    extensions = (".safetensors",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if len(head) < 10:
            return False
        (n,) = struct.unpack_from("<Q", head)
        return 2 <= n <= _MAX_HEADER and head[8:9] == b"{"

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        return {"metadata": None}  # flat names ('a/b' for nested dicts) are valid keys

    def dumps(self, state: Mapping, tensors: Callable[[], dict[str, RawTensor]], path: str) -> bytes:
        """What safetensors.torch.save writes for a flat dict of torch tensors."""
        from safetensors.torch import save

        return save({k: v.contiguous() for k, v in state.items()})

    def loads(self, data: bytes, path: str) -> Any:
        """The flat dict of torch tensors safetensors.torch.load makes of the file."""
        from safetensors.torch import load

        return load(bytes(data))

    def read(self, data: memoryview, path: str) -> Checkpoint:
        if len(data) < 8:
            raise CheckpointError("truncated safetensors file (no header)", path)
        (n,) = struct.unpack_from("<Q", data)
        if n > _MAX_HEADER or 8 + n > len(data):
            raise CheckpointError("truncated or corrupt safetensors file (header length past the end)", path)
        try:
            header = json.loads(bytes(data[8 : 8 + n]))
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError("corrupt safetensors header (not JSON)", path) from None
        if not isinstance(header, dict):
            raise CheckpointError("corrupt safetensors header (not an object)", path)
        meta = header.pop("__metadata__", None)
        base = 8 + n
        items = []
        for name, info in header.items():
            try:
                dt = dtypes.BY_SAFETENSORS[info["dtype"]]
                shape = tuple(int(s) for s in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"corrupt safetensors entry for {name!r}", path) from None
            if end - begin != numel(shape) * dt.itemsize or begin < 0 or base + end > len(data):
                raise CheckpointError(f"tensor {name!r} runs past the end of the file (truncated?)", path)
            items.append((begin, name, dt, shape, end))
        items.sort()
        # as the safetensors library requires: tensors tile the data exactly, no overlap, no gap
        pos = 0
        for begin, name, _, _, end in items:
            if begin != pos:
                what = "overlaps another tensor" if begin < pos else "leaves a gap before it"
                raise CheckpointError(
                    f"tensor {name!r} {what} (data_offsets); the safetensors library refuses this file too",
                    path,
                )
            pos = end
        if base + pos != len(data):
            raise CheckpointError("safetensors data does not end where its last tensor ends", path)
        tensors = {
            name: RawTensor(dt.name, shape, data[base + b : base + e]) for b, name, dt, shape, e in items
        }
        if isinstance(meta, dict):  # kept as pairs: the file's order survives sorted-key metadata
            meta = [[str(k), v] for k, v in meta.items()]
        return Checkpoint(tensors, {"metadata": meta})

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        super().check_layout(layout, specs, path)
        meta = layout.get("metadata")
        pairs = meta.items() if isinstance(meta, dict) else meta
        if meta is not None and (
            not isinstance(pairs, (list, type({}.items())))
            or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in pairs
            )
        ):
            raise checks.fail("__metadata__ is not a map of strings to strings", path)
        for s in specs:
            if dtypes.get(s.dtype).safetensors is None:
                raise checks.fail(f"dtype {s.dtype} of {s.name!r:.60} has no safetensors spelling", path)

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        raw = self._header(layout, specs, path)
        out.write(struct.pack("<Q", len(raw)))
        out.write(raw)
        for tensor in tensors:
            out.write(tensor.data)

    def tensor_offsets(self, layout: dict, specs: list[TensorSpec], path: str) -> list[int]:
        start = 8 + len(self._header(layout, specs, path))
        offsets = []
        for spec in specs:
            offsets.append(start)
            start += numel(spec.shape) * dtypes.get(spec.dtype).itemsize
        return offsets

    @staticmethod
    def _header(layout: dict, specs: list[TensorSpec], path: str) -> bytes:
        """The JSON header `write` writes (after its 8-byte length), padded to 8 bytes."""
        header: dict = {}
        meta = layout.get("metadata")
        if meta is not None:
            header["__metadata__"] = dict(meta) if isinstance(meta, list) else meta
        offset = 0
        for spec in specs:
            dt = dtypes.get(spec.dtype)
            if dt.safetensors is None:
                raise CheckpointError(f"dtype {dt.name} of {spec.name!r} has no safetensors spelling", path)
            size = numel(spec.shape) * dt.itemsize
            header[spec.name] = {
                "dtype": dt.safetensors,
                "shape": list(spec.shape),
                "data_offsets": [offset, offset + size],
            }
            offset += size
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return raw + b" " * (-len(raw) % 8)
