"""Keras 3 `.keras` archives: a zip holding `config.json`, `metadata.json` and `model.weights.h5`.

Keras stores the members uncompressed, so the weights file lies as is inside the zip. Every
stored HDF5 member is split into tensors as a `.weights.h5` file is (see hdf5.py); the tensors of
`model.weights.h5` keep their HDF5 paths as names, those of any other HDF5 member are prefixed
with the member's name. The rest of the archive (zip headers, JSON members) stays in the layout
as bytes. The only bytes of the archive that depend on the tensors are the CRC-32 of each split
member (in its local header and in the central directory): `write` computes them anew, so an
unchanged archive comes back byte-identical and a changed one is a valid zip.
"""

import struct
import zipfile
import zlib
from collections.abc import Iterable
from typing import BinaryIO

from git_theta.errors import CheckpointError
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.formats.hdf5 import SIGNATURE, MemoryFile, layout_fits, raw_segments, read_hdf5, write_segments
from git_theta.tensor import RawTensor, TensorSpec

WEIGHTS = "model.weights.h5"
_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_KERAS_MEMBERS = (b"metadata.json", b"config.json", b"model.weights")


def _central_records(data: memoryview, start: int, count: int, path: str) -> list[int]:
    """File offsets of the `count` central-directory records from `start`."""
    out, pos = [], start
    for _ in range(count):
        if bytes(data[pos : pos + 4]) != _CENTRAL or pos + 46 > len(data):
            raise CheckpointError("corrupt .keras archive (central directory)", path)
        nlen, elen, clen = struct.unpack_from("<HHH", data, pos + 28)
        out.append(pos)
        pos += 46 + nlen + elen + clen
    return out


def _split_members(data: memoryview, path: str) -> list[tuple[int, int, int, int, str]]:
    """(local header, central record, data start, size, name) of each member to split."""
    try:
        zf = zipfile.ZipFile(MemoryFile(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, NotImplementedError):
        raise CheckpointError("not a .keras archive (not a readable zip file)", path) from None
    with zf:
        infos = zf.infolist()
        records = _central_records(data, zf.start_dir, len(infos), path)
    found = []
    for info, record in zip(infos, records):
        local = info.header_offset
        if bytes(data[local : local + 4]) != _LOCAL:
            raise CheckpointError(f"corrupt .keras archive (member {info.filename!r})", path)
        nlen, elen = struct.unpack_from("<HH", data, local + 26)
        start = local + 30 + nlen + elen
        if not info.filename.endswith(".h5"):
            continue
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x9:
            raise CheckpointError(
                f"member {info.filename} is compressed, encrypted or streamed; "
                "git-theta tracks .keras archives as Keras writes them (weights stored as is)",
                path,
            )
        size = info.compress_size
        if start + size > len(data) or info.file_size != size:
            raise CheckpointError(
                f"member {info.filename} runs past the end of the archive (truncated?)", path
            )
        member = data[start : start + size]
        if bytes(member[:8]) != SIGNATURE:
            continue
        if zlib.crc32(member) != info.CRC:
            raise CheckpointError(f"member {info.filename} fails its CRC check (corrupt archive)", path)
        found.append((local, record, start, size, info.filename))
    if not found:
        raise CheckpointError(f"no stored HDF5 weights ({WEIGHTS}) in this .keras archive", path)
    return found


class KerasCheckpoint(CheckpointFormat):
    """A Keras 3 `.keras` archive, its weights split into tensors by HDF5 path."""

    name = "keras"
    aliases = ("keras-archive", "keras3")
    extensions = (".keras",)
    new_files = False  # a Keras archive holds the model config, which tensors alone do not give

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """A zip whose first member is one Keras writes (torch zips share the container)."""
        if not head.startswith(_LOCAL) or len(head) < 30:
            return False
        (nlen,) = struct.unpack_from("<H", head, 26)
        return head[30 : 30 + nlen].startswith(_KERAS_MEMBERS)

    def read(self, data: memoryview, path: str) -> Checkpoint:
        cuts = []  # (offset, size, segments standing for data[offset : offset + size])
        tensors: dict[str, RawTensor] = {}
        for local, record, start, size, name in _split_members(data, path):
            span = [start, start + size]
            cuts.append((local + 14, 4, [{"crc32": span}]))
            prefix = "" if name == WEIGHTS else f"{name}/"
            inner = read_hdf5(data[start : start + size], f"{path}:{name}", prefix)
            tensors.update(inner.tensors)
            cuts.append((start, size, inner.layout["segments"]))
            cuts.append((record + 16, 4, [{"crc32": span}]))
        cuts.sort(key=lambda c: c[0])
        segments: list[dict] = []
        pos = 0
        for offset, size, segs in cuts:
            if offset < pos:
                raise CheckpointError("corrupt .keras archive (members overlap)", path)
            segments += raw_segments(data[pos:offset])
            segments += segs
            pos = offset + size
        segments += raw_segments(data[pos:])
        return Checkpoint(tensors, {"segments": segments})

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        """Rebuild the archive in memory (a member's CRC precedes its data), then write it out."""
        segments = layout.get("segments")
        if segments is None:
            raise CheckpointError(
                "a .keras archive needs its model config: save the model with Keras and add it, "
                "or save the state dict as .weights.h5",
                path,
            )
        buf = _Buffer()
        holes: list[tuple[int, list]] = []
        plain: list[dict] = []
        it = iter(tensors)
        for seg in segments:
            if "crc32" in seg:
                write_segments(plain, it, buf, path)
                plain = []
                holes.append((buf.tell(), seg["crc32"]))
                buf.write(b"\0\0\0\0")
            else:
                plain.append(seg)
        write_segments(plain, it, buf, path)
        data = buf.data
        for at, (begin, end) in holes:
            if not 0 <= int(begin) <= int(end) <= len(data):
                raise CheckpointError("the .keras layout names a member outside the archive", path)
            struct.pack_into("<I", data, at, zlib.crc32(memoryview(data)[int(begin) : int(end)]))
        out.write(data)

    def layout_fits(self, layout: dict, specs: list[TensorSpec]) -> bool:
        """Whether an archive's layout can take these tensors (same names, dtypes and shapes)."""
        return layout_fits(layout, specs)


class _Buffer:
    """A growing bytearray with the write/tell that write_segments needs."""

    def __init__(self):
        self.data = bytearray()

    def write(self, chunk) -> None:
        self.data += chunk

    def tell(self) -> int:
        return len(self.data)
