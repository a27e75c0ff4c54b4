"""PyTorch checkpoints (torch.save zip archives and legacy pickled dicts), read without torch."""

import hashlib
import io
import pickle
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, BinaryIO

import numpy as np

from git_theta import dtypes, parallel
from git_theta.errors import CheckpointError, ThetaError
from git_theta.formats import layout as layout_checks
from git_theta.formats import torch_pickle, zipio
from git_theta.formats.base import Checkpoint, CheckpointFormat, skeleton
from git_theta.tensor import RawTensor, TensorSpec, numel

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")
_SYS_INFO = {
    "protocol_version": LEGACY_PROTOCOL,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


def _materialize(ref: torch_pickle.TensorRef, storage: memoryview, path: str, name: str) -> RawTensor:
    """Cut one tensor out of its storage bytes: a view when contiguous, else a strided copy."""
    dt = ref.dtype
    size = tuple(int(s) for s in ref.size)
    n = numel(size)
    item = dt.itemsize
    base = (ref.storage.view_offset + ref.offset) * item
    contiguous_stride, acc = [], 1
    for s in reversed(size):
        contiguous_stride.append(acc)
        acc *= s
    contiguous = n == 0 or all(
        st == cs for st, cs, sz in zip(ref.stride, reversed(contiguous_stride), size) if sz > 1
    )
    if len(ref.stride) != len(size) or any(s < 0 for s in size) or any(int(st) < 0 for st in ref.stride):
        raise CheckpointError(f"tensor {name!r} has a malformed size or stride", path)
    if n * item > 8 * len(storage) + (256 << 20):  # stride-0 views that expand past any real tensor
        raise CheckpointError(f"tensor {name!r} expands far past its storage", path)
    if n and base + (sum((s - 1) * st for s, st in zip(size, ref.stride)) + 1) * item > len(storage):
        raise CheckpointError(f"tensor {name!r} points past the end of its storage (truncated file?)", path)
    if contiguous:
        return RawTensor(dt.name, size, storage[base : base + n * item])
    arr = np.frombuffer(storage, dtype=dt.numpy(), offset=base)
    view = np.lib.stride_tricks.as_strided(arr, size, [st * item for st in ref.stride])
    return RawTensor.from_numpy(np.ascontiguousarray(view), dt.name)


def _budget(pickle_bytes: int) -> int:
    """Objects a pickle of this size may expand to: a real state dict names each object with
    a few bytes at least; shared references (the memo) must not multiply them."""
    return min(torch_pickle.MAX_TREE_NODES, 100_000 + 10 * pickle_bytes)


def _torch():
    try:
        import torch
    except ImportError:
        raise ThetaError(
            "a PyTorch checkpoint in memory needs torch: pip install 'git-theta[pytorch]'"
        ) from None
    return torch


class PyTorchCheckpoint(CheckpointFormat):
    """`torch.save` files: the zip format (default since torch 1.6) and the legacy pickle format."""

    name = "pytorch"
    aliases = ("pickled-dict", "torch")
    extensions = (".pt", ".pth", ".bin", ".ckpt", ".pkl")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(b"PK\x03\x04") or head.startswith(_LEGACY_HEAD)

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        """The layout torch.save gives the state dict's nesting (read from a skeleton of empty tensors)."""
        torch = _torch()
        buf = io.BytesIO()
        torch.save(skeleton(tree, specs, lambda s: torch.empty(0, dtype=getattr(torch, s.dtype))), buf)
        return self.layout_of(buf.getvalue(), specs, path)

    def dumps(self, state: Mapping, tensors: Callable[[], dict[str, RawTensor]], path: str) -> bytes:
        """What torch.save writes for `state` (non-tensor values included)."""
        buf = io.BytesIO()
        _torch().save(state, buf)
        return buf.getvalue()

    def loads(self, data: bytes, path: str) -> Any:
        """What torch.load (weights only: no code from the file runs) makes of the file."""
        return _torch().load(io.BytesIO(data), weights_only=True)

    def read(self, data: memoryview, path: str) -> Checkpoint:
        if bytes(data[:4]) == b"PK\x03\x04":
            return self._read_zip(data, path)
        if bytes(data[: len(_LEGACY_HEAD)]) == _LEGACY_HEAD:
            return self._read_legacy(data, path)
        raise CheckpointError(
            "not a PyTorch checkpoint (neither a torch.save zip nor a legacy pickle); "
            "set GIT_THETA_CHECKPOINT_TYPE, or untrack it with `git theta untrack`",
            path,
        )

    def _read_zip(self, data: memoryview, path: str) -> Checkpoint:
        entries = zipio.read_entries(data, path)
        pkl = [n for n in entries if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise CheckpointError("zip archive without a torch data.pkl (not a torch.save file?)", path)
        archive = pkl[0].split("/")[0]
        obj, storages = torch_pickle.unpickle(entries[pkl[0]], path)
        tree, leaves = torch_pickle.to_tree(obj, path, _budget(len(entries[pkl[0]])))
        tensors = {}
        for name, ref in leaves:
            member = f"{archive}/data/{ref.storage.key}"
            if member not in entries:
                raise CheckpointError(f"storage for tensor {name!r} is missing (truncated file?)", path)
            tensors[name] = _materialize(ref, entries[member], path, name)
        layout = {"container": "zip", "archive": archive, "tree": tree}
        byteorder = entries.get(f"{archive}/byteorder")
        if byteorder is not None and bytes(byteorder) != b"little":
            raise CheckpointError("big-endian torch checkpoints are not supported", path)
        return Checkpoint(tensors, layout)

    def _read_legacy(self, data: memoryview, path: str) -> Checkpoint:
        reader = torch_pickle._Reader(data)
        try:
            magic = pickle.load(reader)
            protocol = pickle.load(reader)
            sys_info = pickle.load(reader)
        except Exception:
            raise CheckpointError("truncated or corrupt legacy torch checkpoint", path) from None
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL or not isinstance(sys_info, dict):
            raise CheckpointError("unsupported legacy torch checkpoint header", path)
        if not sys_info.get("little_endian", True):
            raise CheckpointError("big-endian torch checkpoints are not supported", path)
        start = reader.pos
        obj, storages = torch_pickle.unpickle(None, path, reader)
        budget = _budget(reader.pos - start)
        keys, _ = torch_pickle.unpickle(None, path, reader)
        if not isinstance(keys, list) or len(keys) > len(storages):
            raise CheckpointError("corrupt legacy torch checkpoint (storage keys)", path)
        raw: dict[str, memoryview] = {}
        pos = reader.pos
        for key in keys:
            ref = storages.get(str(key))
            if pos + 8 > len(data) or ref is None:
                raise CheckpointError("truncated legacy torch checkpoint (storage records)", path)
            (count,) = struct.unpack_from("<q", data, pos)
            item = ref.stype.dtype.itemsize if ref.stype.dtype else 1
            end = pos + 8 + count * item
            if count < 0 or end > len(data):
                raise CheckpointError("truncated legacy torch checkpoint (storage data)", path)
            raw[str(key)] = data[pos + 8 : end]
            pos = end
        tree, leaves = torch_pickle.to_tree(obj, path, budget)
        tensors = {name: _materialize(ref, raw[ref.storage.key], path, name) for name, ref in leaves}
        return Checkpoint(tensors, {"container": "legacy", "tree": tree})

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        super().check_layout(layout, specs, path)
        if layout.get("container", "zip") not in ("zip", "legacy"):
            raise layout_checks.fail(f"unknown container {layout.get('container')!r:.40}", path)
        if layout.get("archive") is not None:
            layout_checks.check_plain_name(layout["archive"], "archive name", path)
        tree = layout.get("tree")
        if tree is not None:
            found = torch_pickle.check_tree(tree, path)
            layout_checks.check_leaves(found, [s.name for s in specs], path, ordered=False)
        if layout.get("container") == "legacy":
            for s in specs:
                if dtypes.get(s.dtype).torch_storage is None:
                    raise layout_checks.fail(
                        f"dtype {s.dtype} cannot be written in torch's legacy format", path
                    )

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        tree, keys = self._tree_and_keys(layout, specs, path)
        if layout.get("container") == "legacy":
            self._write_legacy(tree, keys, specs, tensors, out)
        else:
            self._write_zip(layout.get("archive") or "archive", tree, keys, specs, tensors, out)

    def tensor_offsets(self, layout: dict, specs: list[TensorSpec], path: str) -> list[int] | None:
        if layout.get("container") == "legacy":
            return None
        tree, keys = self._tree_and_keys(layout, specs, path)
        archive = layout.get("archive") or "archive"
        plan = zipio.ZipWriter(None, align=64)
        for name, data in self._zip_head(archive, tree, keys):
            plan.place(name, len(data))
        return [
            plan.place(f"{archive}/data/{keys[s.name][0]}", numel(s.shape) * dtypes.get(s.dtype).itemsize)
            for s in specs
        ]

    @staticmethod
    def _tree_and_keys(layout: dict, specs: list[TensorSpec], path: str) -> tuple:
        """The pickled tree and each tensor's (storage key, shape, dtype)."""
        tree = layout.get("tree")
        if tree is None:  # a layout from another format: write a flat state dict
            tree = {"odict_of_tensors": [s.name for s in specs]}
        keys = {s.name: (str(i), s.shape, s.dtype) for i, s in enumerate(specs)}
        missing = [n for n in torch_pickle.leaf_names(tree) if n not in keys]
        if missing:
            raise CheckpointError(f"metadata names tensors it does not store: {', '.join(missing[:5])}", path)
        return tree, keys

    @staticmethod
    def _zip_head(archive: str, tree, keys) -> list[tuple[str, bytes]]:
        """The members written before the tensors' data, in order."""
        return [
            (f"{archive}/data.pkl", torch_pickle.TreePickler(keys).dumps(tree)),
            (f"{archive}/.format_version", b"1"),
            (f"{archive}/.storage_alignment", b"64"),
            (f"{archive}/byteorder", b"little"),
        ]

    @classmethod
    def _write_zip(cls, archive, tree, keys, specs, tensors, out) -> None:
        zw = zipio.ZipWriter(out, align=64)
        for name, data in cls._zip_head(archive, tree, keys):
            zw.add(name, data)
        digest = hashlib.sha256()
        # checksums on worker threads while this one writes
        with_crc = parallel.ordered_map(lambda t: (t, zipio.crc32(t.data)), tensors)
        for spec, (tensor, crc) in zip(specs, with_crc):
            zw.add(f"{archive}/data/{keys[spec.name][0]}", tensor.data, crc)
            digest.update(f"{spec.name}\0{spec.dtype}\0{spec.shape}\0".encode())
        zw.add(f"{archive}/version", b"3\n")
        # torch writes a random id here; ours is derived from the contents so output is reproducible
        zw.add(f"{archive}/.data/serialization_id", str(int(digest.hexdigest()[:32], 16)).zfill(40).encode())
        zw.close()

    @staticmethod
    def _write_legacy(tree, keys, specs, tensors, out) -> None:
        out.write(pickle.dumps(LEGACY_MAGIC, protocol=2))
        out.write(pickle.dumps(LEGACY_PROTOCOL, protocol=2))
        out.write(pickle.dumps(_SYS_INFO, protocol=2))
        out.write(torch_pickle.TreePickler(keys, legacy=True).dumps(tree))
        out.write(pickle.dumps([keys[s.name][0] for s in specs], protocol=2))
        for spec, tensor in zip(specs, tensors):
            out.write(struct.pack("<q", numel(spec.shape)))
            out.write(tensor.data)
