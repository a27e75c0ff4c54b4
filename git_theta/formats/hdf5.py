"""HDF5 checkpoints (Keras `.weights.h5`, Hugging Face `tf_model.h5`, legacy Keras `.h5`), via h5py.

h5py (an extra: `pip install 'git-theta[keras]'`) is imported only when such a file is read or
written. It is used to find where each dataset's bytes lie; the file itself is never rewritten
by HDF5. A dataset stored contiguously, uncompressed, as a plain little-endian number type
becomes a tensor named by its HDF5 path (`layers/dense/vars/0`). Every other byte of the file
(superblock, groups, attributes, object headers, strings, compressed or chunked datasets) is kept
in the layout as the file's "skeleton", so `write` puts the same bytes back around the tensors:
the file comes back byte-identical, and a file written with new tensor values is exactly what
HDF5 would have written (HDF5 keeps no checksum of raw data).
"""

import base64
import io
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import BinaryIO

from git_theta import dtypes
from git_theta.errors import CheckpointError, shorten
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.tensor import RawTensor, TensorSpec, numel

SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZERO_RUN = 64  # zero runs at least this long are kept as a count (HDF5 metadata is mostly padding)
_MAX_OBJECTS = 1_000_000  # groups and datasets visited, so a looping or huge file stops early


def _h5py(path: str | None = None):
    try:
        import h5py
    except ImportError:
        raise CheckpointError(
            "reading HDF5 / Keras checkpoints needs h5py: pip install 'git-theta[keras]'", path
        ) from None
    return h5py


class MemoryFile(io.RawIOBase):
    """A read-only file over a memoryview, for h5py's file-object driver (no copy of the file)."""

    def __init__(self, data: memoryview):
        super().__init__()
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: len(self.data)}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buf) -> int:
        chunk = self.data[self.pos : self.pos + len(buf)]
        buf[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def _tensor_dtype(dset) -> str | None:
    """The git-theta dtype of a dataset's elements, or None when its bytes stay in the skeleton."""
    dt = dset.dtype
    if dt.kind == "V" and dt.itemsize == 2 and not dt.fields:  # Keras writes bfloat16 as opaque
        tag = dset.attrs.get("dtype")
        if (tag.decode() if isinstance(tag, bytes) else tag) == "bfloat16":
            return "bfloat16"
        return None
    if dt.kind not in "fiucb" or dt.byteorder == ">" or dt.fields or dt.subdtype:
        return None
    name = "bool" if dt.kind == "b" else dt.name
    return name if name in dtypes.DTYPES else None


def _datasets(root) -> Iterator[tuple[str, object]]:
    """(path, dataset) of every dataset reachable by hard links, each object once, depth first in
    name order (an object linked twice is named by its first path).

    Soft and external links are not followed: reading a file must never open another one."""
    h5py = _h5py()
    seen: set = set()
    stack = [("", root, iter(list(root)))]
    while stack:
        prefix, group, keys = stack[-1]
        key = next(keys, None)
        if key is None:
            stack.pop()
            continue
        if not isinstance(group.get(key, getlink=True), h5py.HardLink):
            continue
        obj = group[key]
        addr = h5py.h5o.get_info(obj.id).addr
        if addr in seen:
            continue
        seen.add(addr)
        if len(seen) > _MAX_OBJECTS:
            raise ValueError("more HDF5 objects than any checkpoint has")
        if isinstance(obj, h5py.Group):
            stack.append((f"{prefix}{key}/", obj, iter(list(obj))))
        elif isinstance(obj, h5py.Dataset):
            yield f"{prefix}{key}", obj


def scan(data: memoryview, path: str) -> list[tuple[int, str, str, tuple[int, ...], int]]:
    """(offset, name, dtype, shape, nbytes) of each tensor of the HDF5 file `data`, in file order."""
    h5py = _h5py(path)
    found = []
    try:
        with h5py.File(MemoryFile(data), "r") as f:
            for name, dset in _datasets(f):
                dtype = _tensor_dtype(dset)
                if dtype is None or dset.shape is None or dset.chunks is not None or dset.is_virtual:
                    continue
                if dset.external:
                    continue
                offset = dset.id.get_offset()
                nbytes = numel(dset.shape) * dtypes.get(dtype).itemsize
                if offset is None or dset.id.get_storage_size() != nbytes or nbytes == 0:
                    continue  # unallocated, compact or oddly sized: the bytes stay in the skeleton
                found.append((offset, name, dtype, tuple(int(s) for s in dset.shape), nbytes))
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"corrupt or truncated HDF5 file ({shorten(str(exc), 120)}); re-save it or restore a good copy",
            path,
        ) from None
    found.sort()
    end = 0
    for offset, name, _, _, nbytes in found:
        if offset < end or offset + nbytes > len(data):
            raise CheckpointError(f"dataset {name!r} overlaps another or runs past the end of the file", path)
        end = offset + nbytes
    return found


def raw_segments(chunk: memoryview) -> list[dict]:
    """Skeleton bytes as segments; long zero runs become {"zeros": n}."""
    out: list[dict] = []
    raw = bytes(chunk)
    pos, n = 0, len(raw)
    while pos < n:
        z = raw.find(b"\0" * _ZERO_RUN, pos)
        if z < 0:
            z = n
        if z > pos:
            out.append({"raw": base64.b64encode(raw[pos:z]).decode()})
        if z == n:
            break
        end = z
        while end < n and raw[end] == 0:
            end += 1
        out.append({"zeros": end - z})
        pos = end
    return out


def read_hdf5(data: memoryview, path: str, prefix: str = "") -> Checkpoint:
    """Split an HDF5 file into its tensors and the segments that rebuild it around them."""
    if bytes(data[:8]) != SIGNATURE and not any(
        bytes(data[k : k + 8]) == SIGNATURE for k in (512, 1024, 2048, 4096)
    ):
        raise CheckpointError("not an HDF5 file (no HDF5 signature)", path)
    tensors: dict[str, RawTensor] = {}
    segments: list[dict] = []
    pos = 0
    for offset, name, dtype, shape, nbytes in scan(data, path):
        segments += raw_segments(data[pos:offset])
        tensors[prefix + name] = RawTensor(dtype, shape, data[offset : offset + nbytes])
        segments.append({"tensor": prefix + name, "nbytes": nbytes})
        pos = offset + nbytes
    segments += raw_segments(data[pos:])
    return Checkpoint(tensors, {"segments": segments})


def segment_size(seg: dict) -> int:
    """The number of file bytes one layout segment stands for."""
    if "tensor" in seg:
        return int(seg["nbytes"])
    if "zeros" in seg:
        return int(seg["zeros"])
    return len(base64.b64decode(seg["raw"]))


def write_segments(segments: list[dict], tensors: Iterator[RawTensor], out: BinaryIO, path: str) -> None:
    """Write layout segments, taking each tensor segment's bytes from `tensors` in order."""
    for seg in segments:
        if "tensor" in seg:
            tensor = next(tensors)
            if tensor.nbytes != int(seg["nbytes"]):
                raise CheckpointError(
                    f"tensor {seg['tensor']!r} has {tensor.nbytes} bytes where the HDF5 file holds "
                    f"{seg['nbytes']}; an HDF5 checkpoint's shapes and dtypes cannot change",
                    path,
                )
            out.write(tensor.data)
        elif "zeros" in seg:
            n = int(seg["zeros"])
            while n > 0:
                step = min(n, 1 << 20)
                out.write(bytes(step))
                n -= step
        else:
            out.write(base64.b64decode(seg["raw"]))


def layout_fits(layout: dict, specs: list[TensorSpec]) -> bool:
    """True when `layout`'s tensor slots take exactly the tensors of `specs`, in order."""
    slots = [(seg["tensor"], int(seg["nbytes"])) for seg in layout.get("segments", []) if "tensor" in seg]
    return slots == [(s.name, numel(s.shape) * dtypes.get(s.dtype).itemsize) for s in specs]


def new_file_layout(specs: list[TensorSpec], path: str) -> dict:
    """The layout of a fresh HDF5 file holding `specs` (for a state dict saved straight to git).

    h5py writes the file with every dataset allocated but never filled, so the temporary file
    is sparse; its skeleton is what `write` then fills with the tensors."""
    import tempfile

    h5py = _h5py(path)
    with tempfile.TemporaryDirectory(prefix="git-theta-h5-") as tmp:
        name = os.path.join(tmp, "skeleton.h5")
        with h5py.File(name, "w", track_order=True) as f:
            lcpl = h5py.h5p.create(h5py.h5p.LINK_CREATE)
            lcpl.set_create_intermediate_group(True)
            for spec in specs:
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_layout(h5py.h5d.CONTIGUOUS)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
                dcpl.set_obj_track_times(False)
                tid = h5py.h5t.py_create(dtypes.get(spec.dtype).numpy(), logical=1)
                space = h5py.h5s.create_simple(spec.shape) if spec.shape else h5py.h5s.create(h5py.h5s.SCALAR)
                h5py.h5d.create(f.id, spec.name.encode(), tid, space, dcpl=dcpl, lcpl=lcpl)
                if spec.dtype == "bfloat16":
                    f[spec.name].attrs["dtype"] = "bfloat16"
        with open(name, "rb") as fh:
            checkpoint = read_hdf5(memoryview(fh.read()), path)
    if list(checkpoint.tensors) != [s.name for s in specs]:
        raise CheckpointError("an HDF5 file cannot hold this state dict's names (empty tensors?)", path)
    return checkpoint.layout


class HDF5Checkpoint(CheckpointFormat):
    """Keras `.weights.h5`, Hugging Face `tf_model.h5` and any HDF5 file of plain datasets."""

    name = "hdf5"
    aliases = ("h5", "keras-h5", "keras-weights")
    extensions = (".h5", ".hdf5")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(SIGNATURE)

    def read(self, data: memoryview, path: str) -> Checkpoint:
        return read_hdf5(data, path)

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        segments = layout.get("segments")
        if segments is None:
            segments = new_file_layout(specs, path)["segments"]
        write_segments(segments, iter(tensors), out, path)

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        """The layout of a new file holding `specs`, datasets named by their flat names."""
        return new_file_layout(specs, path)

    def layout_fits(self, layout: dict, specs: list[TensorSpec]) -> bool:
        """Same names, dtypes and shapes: an HDF5 file's layout fixes every dataset's size."""
        return layout_fits(layout, specs)
