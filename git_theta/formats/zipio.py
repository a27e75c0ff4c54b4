"""Zip archives of torch.save and np.savez: members read in place, stored ones written aligned.

torch writes its checkpoints as uncompressed zip archives with 64-byte aligned members. Reading
takes the central directory from zipfile (zip64 included) and each stored member as a view at
its offset, avoiding both torch's import and copies of the model; writing them the same way
(ZipWriter) lets smudge stream a checkpoint tensor by tensor.

zipfile's directory costs more than the hand-written parser it replaced: GPT-2-small's .pt
(149 members) 1.9 M instructions a read against 0.8 M, ~0.15 ms (benchmarks/bench_lowlevel.py),
nothing next to the second its checkout takes.
"""

import struct
import zipfile
import zlib

try:  # ISA-L's CRC-32 (the zip one): 10.3 GB/s here against zlib's 2.4 GB/s, which made a 498 MB
    # .pt checkout spend 0.2 s of CPU (0.10-0.14 s of wall time) on checksums alone
    from isal.isal_zlib import crc32
except ImportError:  # a platform without its wheels: zlib's, slower, same values
    from zlib import crc32
from collections.abc import Callable
from typing import BinaryIO

from git_theta.errors import CheckpointError

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOC = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_U32 = 0xFFFFFFFF


# peek at a deflated member's first bytes -> the exact size its contents must have (None: any)
Claimed = Callable[[str, bytes], "int | None"]
_PEEK = 4096
_DEFLATE_RATIO = 1100  # deflate cannot expand past ~1032:1; a member declaring more lies


def read_entries(data: memoryview, path: str, claimed: "Claimed | None" = None) -> dict[str, memoryview]:
    """Map member name -> contents; stored members are views into `data`, no copy."""
    return {name: content for name, _, content in members(data, path, claimed)}


def _inflate(raw: memoryview, usize: int, name: str, path: str, claimed: "Claimed | None") -> memoryview:
    """A deflated member, decompressed to exactly the size its archive declares (and, with
    `claimed`, the size its own header says it holds) before more memory is spent on it."""
    if usize > len(raw) * _DEFLATE_RATIO + 1024:
        raise CheckpointError(
            f"zip member {name} declares {usize} bytes, more than deflate can expand to", path
        )
    try:
        if claimed is not None:
            want = claimed(name, zlib.decompressobj(-15).decompress(raw, min(usize, _PEEK) or 1))
            if want is not None and want != usize:
                raise CheckpointError(
                    f"zip member {name} declares {usize} bytes but its header claims {want}; re-save the file",
                    path,
                )
        inflater = zlib.decompressobj(-15)
        out = inflater.decompress(raw, usize + 1)  # one byte more than declared shows a lie
    except zlib.error:
        raise CheckpointError(f"zip member {name} is corrupt", path) from None
    if len(out) != usize or not inflater.eof:
        raise CheckpointError(
            f"zip member {name} does not decompress to the {usize} bytes its archive declares; re-save the file",
            path,
        )
    return memoryview(out)


class _BufferFile:
    """A read-only, seekable file over a buffer, for zipfile to find the central directory in:
    it reads only the end records and the directory, so members are not copied."""

    def __init__(self, data: memoryview):
        self.data, self.pos = data, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = offset + (0, self.pos, len(self.data))[whence]
        if pos < 0:
            raise OSError("seek before the start of the archive")
        self.pos = pos
        return pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        stop = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        out = bytes(self.data[self.pos : stop])
        self.pos = max(self.pos, stop)
        return out


def _directory(data: memoryview, path: str) -> list[zipfile.ZipInfo]:
    """The archive's central directory, parsed by zipfile (zip64 included)."""
    try:
        with zipfile.ZipFile(_BufferFile(data)) as archive:  # type: ignore[arg-type]
            return archive.infolist()
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError, struct.error) as exc:
        raise CheckpointError(
            f"truncated or corrupt zip archive ({exc}); re-save the checkpoint", path
        ) from None


def members(
    data: memoryview, path: str, claimed: "Claimed | None" = None
) -> list[tuple[str, int, memoryview]]:
    """(name, compression method, contents) of each member, in central-directory order.

    Deflated members are bounded before they are decompressed: by the sizes the archive
    declares (in total against available memory), by deflate's largest ratio, and by what
    their own header claims (`claimed`)."""
    size = len(data)
    entries: list[tuple[str, int, memoryview]] = []
    inflated = 0
    for info in _directory(data, path):
        name, offset, csize = info.filename, info.header_offset, info.compress_size
        if offset < 0 or offset + 30 > size or bytes(data[offset : offset + 4]) != _LOCAL:
            raise CheckpointError(f"truncated or corrupt zip archive (member {name})", path)
        lnlen, lelen = struct.unpack_from("<26xHH", data, offset)
        start = offset + 30 + lnlen + lelen
        if start + csize > size:
            raise CheckpointError(f"truncated checkpoint: member {name} runs past the end of the file", path)
        raw = data[start : start + csize]
        if info.compress_type == zipfile.ZIP_STORED:
            entries.append((name, info.compress_type, raw))
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            inflated += info.file_size
            if inflated > _memory_budget():
                raise CheckpointError(
                    f"zip archive declares {inflated} bytes of compressed members, more than available memory; "
                    "save it uncompressed (np.savez / torch.save)",
                    path,
                )
            entries.append((name, info.compress_type, _inflate(raw, info.file_size, name, path, claimed)))
        else:
            raise CheckpointError(
                f"zip member {name} uses unsupported compression {info.compress_type}", path
            )
    return entries


def _memory_budget() -> int:
    """Bytes decompressed members may take: available memory, and half an address-space limit."""
    import resource

    from git_theta.memory import available_bytes

    budget = available_bytes()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return budget if soft == resource.RLIM_INFINITY else min(budget, soft // 2)


class ZipWriter:
    """Writes stored (uncompressed) members with data aligned to `align` bytes, streaming."""

    def __init__(self, out: BinaryIO, align: int = 64):
        self.out, self.align = out, align
        self.offset = 0
        self.central: list[bytes] = []

    def _write(self, data) -> None:
        self.out.write(data)
        self.offset += len(data)

    def _local_header(self, bname: bytes, size: int, crc: int) -> bytes:
        """The local header of a member added at the current offset, padded so that its data
        starts aligned; its length does not depend on `crc`."""
        extra = struct.pack("<HHQQ", 1, 16, size, size) if size >= _U32 else b""
        header_len = 30 + len(bname) + len(extra)
        pad = (-(self.offset + header_len + 4)) % self.align if self.align else 0
        if self.align:
            extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding field, as torch
        version = 45 if size >= _U32 or self.offset >= _U32 else 20
        s32 = _U32 if size >= _U32 else size
        local = struct.pack(
            "<4sHHHHHIIIHH", _LOCAL, version, 0, 0, 0, 0x21, crc, s32, s32, len(bname), len(extra)
        )
        return local + bname + extra

    def place(self, name: str, size: int) -> int:
        """Where add(name, DATA) of `size` bytes would put DATA at this point, moving on as if
        it had: a writer made with out=None plans a file's layout without writing it."""
        at = self.offset + len(self._local_header(name.encode("utf-8"), size, 0))
        self.offset = at + size
        return at

    def add(self, name: str, data, crc: int | None = None) -> None:
        """Append a stored member; pass `crc` (crc32 of data) if already known."""
        data = memoryview(data).cast("B")
        bname = name.encode("utf-8")
        size = len(data)
        crc = crc32(data) if crc is None else crc
        version = 45 if size >= _U32 or self.offset >= _U32 else 20
        s32 = _U32 if size >= _U32 else size
        start = self.offset
        self._write(self._local_header(bname, size, crc))
        self._write(data)
        cextra = b""
        o32 = start
        if size >= _U32 or start >= _U32:
            vals = []
            if size >= _U32:
                vals += [size, size]
            if start >= _U32:
                vals.append(start)
                o32 = _U32
            cextra = struct.pack("<HH", 1, 8 * len(vals)) + struct.pack(f"<{len(vals)}Q", *vals)
        self.central.append(
            struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                _CENTRAL,
                version,
                version,
                0,
                0,
                0,
                0x21,
                crc,
                s32,
                s32,
                len(bname),
                len(cextra),
                0,
                0,
                0,
                0,
                o32,
            )
            + bname
            + cextra
        )

    def close(self) -> None:
        cd_offset = self.offset
        for rec in self.central:
            self._write(rec)
        cd_size = self.offset - cd_offset
        n = len(self.central)
        if n >= 0xFFFF or cd_offset >= _U32 or cd_size >= _U32:
            rec64 = self.offset
            self._write(struct.pack("<4sQHHIIQQQQ", _EOCD64, 44, 45, 45, 0, 0, n, n, cd_size, cd_offset))
            self._write(struct.pack("<4sIQI", _EOCD64_LOC, 0, rec64, 1))
            self._write(struct.pack("<4sHHHHIIH", _EOCD, 0, 0, 0xFFFF, 0xFFFF, _U32, _U32, 0))
        else:
            self._write(struct.pack("<4sHHHHIIH", _EOCD, 0, 0, n, n, cd_size, cd_offset, 0))
