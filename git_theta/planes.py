"""Byte planes + zstd: the stored form of 2- and 4-byte tensors (floats, and the unsigned words of
changes), smaller than ZipNN's and than the zarr blosc layout of git_theta.codec.

Each element's bits are rotated left (float32 and bfloat16 by 4, float16 by 1, words not at all),
the tensor is cut into chunks of CHUNK_BYTES, each chunk into byte planes (byte k of every
element), and each plane is compressed on its own by zstd set to find almost no matches (level 1,
min_match 7, hash_log 6), so that it is in effect Huffman-coded literals. A plane that does not
shrink below RAW_SHARE of its size is stored raw.

Why the rotation: a float's exponent then shares its byte with the mantissa's top bits, whose
skew depends on the exponent, so Huffman codes the pair shorter than the two apart; the
exponent's top bits, nearly constant in weights, join the sign in the lowest byte, where Huffman
takes them back. Measured on all-MiniLM-L6-v2 (planes only, headers left out; ZipNN 0.5.4,
Huffman on byte groups, for scale), with the zstd decode time of the compressed planes (one core):

    rotation              float32 (90.9 MB)      bfloat16 (45.4 MB)     float16 (45.4 MB)
    0                     -                      -                      38 518 189  19 ms
    1 (sign to bit 0)     74 466 440  18 ms      30 213 500  16 ms      38 500 654  18 ms  <- f16
    2                     74 352 027  47 ms      30 083 026  37 ms      38 561 113  50 ms
    3                     74 232 355  43 ms      30 039 082  42 ms      -
    4                     74 268 023  36 ms      30 059 517  34 ms      -      <- f32, bf16
    5                     74 488 369  42 ms      30 281 821  39 ms      -
    ZipNN (whole objects) 74 412 003             30 194 473             38 525 538

Rotation 1 (ZipNN's layout) is not under ZipNN; 3 is smallest, 4 nearly so and decodes faster:
its low byte holds 4 random bits instead of 6, so Huffman decodes two symbols per table lookup.
(GPT-2-small's N(0, 0.02) float32: rotation 1 413.45 MB, 3 410.96 MB, 4 412.16 MB, zstd decode
88, 226, 174 ms.) The zigzag-coded differences of a fine-tune (git_theta.updates.bitdelta) are
not rotated: rotation 3 helps their float32 words (25.40 vs 25.93 MB) but hurts bfloat16's
(3.28 vs 3.24 MB), and words are stored without knowing what their bits mean.

zstd settings, measured on MiniLM bfloat16's exponent planes (22.7 MB): more matching only costs
(min_match 6: +0.7%, 5: +2.9%, strategy dfast: +13%, btopt: +0.1% at 7 MB/s); a target_length
(zstd's acceleration) turns Huffman off altogether; window_log 17 saves 219 bytes. Frames carry
no checksum (an object's oid is checked when it is read) but their content size: zstd then decodes
straight into place (0.84 against 0.92 ms per 1 MiB plane). Without magic they would be 4 bytes
smaller (1.5 kB on MiniLM float32), but c-blosc decodes only frames with it (below).
CHUNK_BYTES: 1, 2, 4 and 8 MiB store MiniLM float32 within 6 kB of each other and decode
GPT-2-small equally fast on one core; c-blosc takes twice a chunk in temporaries per call, so
4 MiB chunks raised a checkout's peak memory by 30-60 MB, 1 MiB ones by under 10 MB.

Layout (little-endian): MAGIC, version (u8), element size (u8), rotation (u8), log2 of the
elements per chunk (u8), number of dimensions (u8), each dimension (u64); then per chunk (a run
of elements in C order) its length (u32) and that many bytes: nothing for an all-zero chunk (the
unchanged parts of a change), else a blosc1 frame of one block holding the chunk's rotated words
byte-shuffled, one stream per plane: a zstd frame, or the plane itself where its length is the
plane's (chunks of fewer than MIN_SPLIT elements: the words as they are, "memcpyed"). c-blosc
(numcodecs) then decodes a chunk in one call, zstd into its buffer and a SIMD unshuffle into
place: GPT-2-small decodes in 0.37 s on one core here (0.06 s of it undoing the rotation),
against 0.53 s decoding the planes one by one and interleaving them with numpy, and 0.33 s for
the zarr blosc layout (lz4, bit-shuffle).
Where c-blosc cannot (built without zstd), the planes are decoded here. The magic's first byte
(0x47) is never a msgpack map's (0x80-0x8f, 0xde, 0xdf), so objects in the zarr blosc layout are
told apart by their first byte; each chunk comes with its length, so an encoder streams chunks
out as they are done.

Reading is hostile-safe: before anything is allocated the header must match the entry's dtype and
shape, and every chunk is checked: its length against the bytes there, its blosc header against
the chunk's size, each stream's length against what is left, and each zstd frame must declare
exactly its plane's size (zstd and blosc write at most that). The whole object must be consumed.
A chunk (at most MAX_CHUNK_BYTES) costs at least its 4-byte length, which bounds what an object
may claim; the entry's shape, capped by git_theta.metadata, bounds the rest.
"""

import struct
import threading
from functools import lru_cache

import numpy as np
import zstandard
from numcodecs import zstd as numcodecs_zstd

from git_theta import config, dtypes, memory, parallel
from git_theta.chunks import blosc  # its thread-safe calls that release the GIL (see there)
from git_theta.tensor import numel

MAGIC = b"GTPZ"
VERSION = 1
HEADER = struct.Struct("<4sBBBBB")  # then the dimensions
MAX_NDIM = 32
CHUNK_BYTES = 1 << 20
GROUP = 4  # chunks per job on a worker thread
# Clean and checkout already store and decode tensors on worker threads; a tensor of up to this
# many chunks is then encoded or decoded on the thread it is on, as a blosc tensor of up to two
# 8 MB chunks is. A pool per tensor (GPT-2-small: all but wte, 2-9 chunks) cost `git add` of
# GPT-2-small 1.74 against 1.66 s with blosc and a checkout of its v3 0.91 against 0.82 s;
# without: 1.49 against 1.55 s and 0.77 against 0.75 s (8-12 interleaved rounds). Never
# nesting (wte on one core too) made checkouts slower (0.89 against 0.77 s).
NESTED_MIN_CHUNKS = 16
MAX_CHUNK_BYTES = 64 << 20  # read: larger chunks are refused (an all-zero one costs 4 bytes)
# a compressed plane must be below this share of its size, else it is stored raw. 0.99, 0.995 and
# 1.0 store MiniLM identically: zstd itself leaves literals raw unless Huffman saves 1/64 of them.
# Tensors under 4 kB still gain (MiniLM float32: 58 of them in 0.887 of their size, headers in).
RAW_SHARE = 0.99
PROBES, PROBE_BYTES, PROBE_SHARE = 16, 1024, 0.97  # a plane's samples compressed first (_may_shrink)
ROTATION = {"float32": 4, "bfloat16": 4, "float16": 1, "uint32": 0, "uint16": 0}
_WORD = {2: np.uint16, 4: np.uint32}
_PARAMS = zstandard.ZstdCompressionParameters.from_level(
    1, min_match=7, hash_log=6, write_checksum=0, write_content_size=1
)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# blosc1 frames: header (format version 2, codec version 1, flags, element size, bytes, block
# size, frame bytes), then the block's start (one block) and its streams, each [i32 length][bytes]
BLOSC_HEAD = struct.Struct("<BBBBiii")
_BLOCK_START = 20  # the header and one block start
_SHUFFLED = 0x01 | (4 << 5)  # byte shuffle, zstd
_MEMCPYED = 0x02  # stored as is, no shuffle
MIN_SPLIT = 128  # elements: c-blosc splits a block into one stream per byte from here on


def usable(dtype: str) -> bool:
    """Whether tensors of `dtype` are stored as planes (others keep the zarr blosc layout)."""
    return dtype in ROTATION


def is_planes(blob) -> bool:
    """Whether `blob` is an object in this layout (by its magic)."""
    return bytes(memoryview(blob)[: len(MAGIC)]) == MAGIC


class _Pool:
    """Objects reused across calls and threads (each used by one thread at a time): the worker
    threads of git_theta.parallel live for one call, so thread-local ones would not outlive it."""

    def __init__(self, make, keep: int = 8):
        self.make, self.keep, self.free = make, keep, []
        self.lock = threading.Lock()

    def take(self, *args):
        with self.lock:
            for i, item in enumerate(self.free):
                if not args or item.nbytes >= args[0]:
                    return self.free.pop(i)
        return self.make(*args)

    def give(self, item) -> None:
        with self.lock:
            if len(self.free) < self.keep:
                self.free.append(item)


_compressors = _Pool(lambda: zstandard.ZstdCompressor(compression_params=_PARAMS))
# Scratch for one chunk's planes (plus a plane's width of temporaries): ordinary heap memory, kept
# for the next chunk. Huge-page areas (memory.empty) cost a checkout of GPT-2-small 0.5 s of system
# time in some runs here (the kernel finding 2 MiB pages), and 50 MB more peak memory.
_buffers = _Pool(lambda n: np.empty(max(n, CHUNK_BYTES * 3 // 2), np.uint8), keep=4)


def _split(x: np.ndarray, rot: int, planes: np.ndarray, tmp: np.ndarray) -> None:
    """Byte k of every element of x rotated left by `rot` bits into planes[k*n:(k+1)*n]: one
    shift with a truncating cast per plane, the rotation never materialised (1.1 ms per 4 MiB of
    float32 here, against 2.2 for rotating, then copying each byte column out, and 4.4 for
    numcodecs' Shuffle)."""
    n, bits, t = len(x), x.dtype.itemsize * 8, x.dtype.type
    for k in range(x.dtype.itemsize):
        plane = planes[k * n : (k + 1) * n]
        shift = 8 * k - rot
        if shift >= 0:
            np.right_shift(x, t(shift), out=plane, casting="unsafe")
        else:  # the lowest byte takes the bits rotated out of the top
            np.left_shift(x, t(-shift), out=plane, casting="unsafe")
            np.right_shift(x, t(bits + shift), out=tmp, casting="unsafe")
            np.bitwise_or(plane, tmp, out=plane)


def _rotl(x: np.ndarray, r: int, out: np.ndarray, tmp: np.ndarray) -> None:
    bits = x.dtype.itemsize * 8
    np.left_shift(x, x.dtype.type(r), out=out)
    np.right_shift(x, x.dtype.type(bits - r), out=tmp)
    np.bitwise_or(out, tmp, out=out)


def _rotr_inplace(x: np.ndarray, r: int, tmp: np.ndarray) -> None:
    bits = x.dtype.itemsize * 8
    np.left_shift(x, x.dtype.type(bits - r), out=tmp)
    np.right_shift(x, x.dtype.type(r), out=x)
    np.bitwise_or(x, tmp, out=x)


def _head(width: int, rot: int, per: int, shape: tuple[int, ...]) -> bytes:
    return HEADER.pack(MAGIC, VERSION, width, rot, per.bit_length() - 1, len(shape)) + struct.pack(
        f"<{len(shape)}Q", *shape
    )


def encode(data, dtype: str, shape: tuple[int, ...], sink) -> None:
    """Write the planes layout of `data` (a tensor's bytes, C order) of `dtype` and `shape` to `sink`.

    Chunks are encoded on worker threads and written in order as they are done; an exception
    from `sink.write` stops the encode (the store's writer aborts)."""
    width = dtypes.get(dtype).itemsize
    rot = ROTATION[dtype]
    flat = np.frombuffer(data, dtype=_WORD[width])
    per = max(1, CHUNK_BYTES // width)
    sink.write(_head(width, rot, per, tuple(shape)))
    starts = range(0, len(flat), per)

    def one(start: int):
        return _encode_chunk(flat[start : start + per], width, rot)

    def group(chunk_starts: list[int]) -> list:
        return [one(start) for start in chunk_starts]

    for results in _run(group, _groups(list(starts))):
        for pieces, scratch in results:
            for piece in pieces:
                sink.write(piece)
            if scratch is not None:
                _buffers.give(scratch)


def _encode_chunk(x: np.ndarray, width: int, rot: int):
    """(the chunk's bytes in pieces, scratch buffer some pieces live in, to give back once written).

    Words (rotation 0: the differences of changes) are checked for all-zero chunks, which then
    cost their length field only; float chunks are hardly ever all zero."""
    n = len(x)
    if not rot and not x.any():
        return [bytes(4)], None
    if n < MIN_SPLIT:
        scratch = _buffers.take(2 * width * n)
        words = scratch[: n * width].view(x.dtype)
        if rot:
            _rotl(x, rot, words, scratch[n * width : 2 * n * width].view(x.dtype))
        else:
            np.copyto(words, x)
        size = BLOSC_HEAD.size + n * width
        head = struct.pack("<I", size) + BLOSC_HEAD.pack(2, 1, _MEMCPYED, width, n * width, n * width, size)
        return [head, memoryview(words.view(np.uint8))], scratch
    scratch = _buffers.take((width + 1) * n)
    planes, tmp = scratch[: width * n], scratch[width * n : (width + 1) * n]
    _split(x, rot, planes, tmp)
    streams = []
    zc = _compressors.take()
    try:
        for k in range(width):
            plane = planes[k * n : (k + 1) * n]
            packed = zc.compress(plane) if _may_shrink(zc, plane) else None
            streams.append(
                packed if packed is not None and len(packed) < RAW_SHARE * n else memoryview(plane)
            )
    finally:
        _compressors.give(zc)
    size = _BLOCK_START + sum(4 + len(s) for s in streams)
    pieces = [
        struct.pack("<I", size)
        + BLOSC_HEAD.pack(2, 1, _SHUFFLED, width, n * width, n * width, size)
        + struct.pack("<i", _BLOCK_START)
    ]
    for stream in streams:
        pieces += [struct.pack("<i", len(stream)), stream]
    return pieces, scratch


def _may_shrink(zc, plane: np.ndarray) -> bool:
    """Whether a plane is worth compressing whole: one of PROBES windows of PROBE_BYTES spread
    over it (a 16th of it apart) must shrink below PROBE_SHARE. Random planes (float32's middle
    mantissa bytes) then skip zstd's full pass, which costs half as much as compressing a skewed
    plane: encoding GPT-2-small's float32 took 0.069 instead of 0.078 s of CPU per 64 MB here
    (one core, medians of 7, twice), for 4.4 kB more on MiniLM float32 (74,284,487 bytes; one
    window from the middle missed skewed stretches of its word embeddings: 155 kB more).
    Decided from the chunk's own bytes, so objects stay deterministic."""
    n = len(plane)
    if n < 4 * PROBES * PROBE_BYTES:
        return True
    step = (n - PROBE_BYTES) // (PROBES - 1)
    return any(
        len(zc.compress(plane[i * step : i * step + PROBE_BYTES])) < PROBE_SHARE * PROBE_BYTES
        for i in range(PROBES)
    )


def _frame_size(frame: memoryview) -> int:
    """The content size a zstd frame's header declares; ValueError when it is not a frame or
    declares none (or a dictionary, which these frames never use)."""
    if len(frame) < 6 or bytes(frame[:4]) != _ZSTD_MAGIC:
        raise ValueError("a plane is not a zstd frame")
    fhd = frame[4]
    if fhd & 0x03 or fhd & 0x18:
        raise ValueError("a zstd frame header has flags this layout never writes")
    single, flag = fhd & 0x20, fhd >> 6
    pos = 5 if single else 6  # the window descriptor, without single segment
    size = {0: 1 if single else 0, 1: 2, 2: 4, 3: 8}[flag]
    if not size:
        raise ValueError("a zstd frame does not declare its size")
    if len(frame) < pos + size:
        raise ValueError("a zstd frame is shorter than its header")
    value = int.from_bytes(frame[pos : pos + size], "little")
    return value + 256 if size == 2 else value


def _chunk_streams(view: memoryview, off: int, size: int, n: int, width: int, start: int) -> list | None:
    """Check the blosc frame of a chunk of n elements at view[off:off+size]; its streams
    [(offset, length)] (None: stored as is), every length checked."""
    where = f"the chunk at element {start}"
    if size < BLOSC_HEAD.size:
        raise ValueError(f"{where} is shorter than its header")
    version, codec_version, flags, typesize, nbytes, blocksize, cbytes = BLOSC_HEAD.unpack_from(view, off)
    if (version, codec_version, typesize, nbytes, blocksize, cbytes) != (
        2,
        1,
        width,
        n * width,
        n * width,
        size,
    ):
        raise ValueError(f"the header of {where} does not match its size")
    if flags == _MEMCPYED:
        if size != BLOSC_HEAD.size + n * width:
            raise ValueError(f"{where} does not hold its {n * width} bytes")
        return None
    if flags != _SHUFFLED or n < MIN_SPLIT:
        raise ValueError(f"{where} has flags this layout never writes")
    if size < _BLOCK_START or struct.unpack_from("<i", view, off + BLOSC_HEAD.size)[0] != _BLOCK_START:
        raise ValueError(f"the block of {where} does not start after its header")
    streams, pos, end = [], off + _BLOCK_START, off + size
    for k in range(width):
        if pos + 4 > end:
            raise ValueError(f"{where} ends inside plane {k}'s length")
        (length,) = struct.unpack_from("<i", view, pos)
        pos += 4
        if not 0 < length <= end - pos:
            raise ValueError(f"plane {k} of {where} runs past its end")
        if length != n and _frame_size(view[pos : pos + length]) != n:
            raise ValueError(f"plane {k} of {where} is not of its size")
        streams.append((pos, length))
        pos += length
    if pos != end:
        raise ValueError(f"{end - pos} bytes follow the planes of {where}")
    return streams


def _parse(view: memoryview, pos: int, width: int, count: int, per: int) -> list[tuple]:
    """[(first element, elements, frame offset, frame size, streams)] of every chunk from `pos`
    on (frame size 0: an all-zero chunk), every length checked against the object."""
    jobs = []
    for start in range(0, count, per):
        n = min(per, count - start)
        if pos + 4 > len(view):
            raise ValueError(f"it ends before the chunk at element {start}")
        (size,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if size > len(view) - pos:
            raise ValueError(f"the chunk at element {start} runs past the end")
        streams = _chunk_streams(view, pos, size, n, width, start) if size else None
        jobs.append((start, n, pos, size, streams))
        pos += size
    if pos != len(view):
        raise ValueError(f"{len(view) - pos} bytes follow the last chunk")
    return jobs


def _header(view: memoryview, width: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(rotation, elements per chunk, where the chunks start) after checking the header against
    the tensor the metadata describes."""
    if len(view) < HEADER.size:
        raise ValueError("it is shorter than its header")
    magic, version, stored_width, rot, log2, ndim = HEADER.unpack_from(view, 0)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"unknown planes layout version {version}")
    if ndim > MAX_NDIM or len(view) < HEADER.size + 8 * ndim:
        raise ValueError("its header is malformed")
    stored = struct.unpack_from(f"<{ndim}Q", view, HEADER.size)
    if stored_width != width or stored != tuple(shape):
        raise ValueError(
            f"stored {stored_width}-byte elements of shape {list(stored)[:8]}, metadata says {width}-byte "
            f"elements of shape {list(shape)[:8]}"
        )
    if rot >= 8 * width or (1 << log2) * width > MAX_CHUNK_BYTES:
        raise ValueError("its header is malformed")
    return rot, 1 << log2, HEADER.size + 8 * ndim


def _decode_here(view: memoryview, job: tuple, width: int, out: np.ndarray, scratch: np.ndarray) -> None:
    """A chunk's frame decoded without c-blosc: planes one by one, then interleaved by numpy."""
    start, n, off, size, streams = job
    if streams is None:
        out[:] = np.frombuffer(view[off + BLOSC_HEAD.size : off + size], np.uint8)
        return
    cols = out.reshape(n, width)
    plane = scratch[:n]
    for k, (pos, length) in enumerate(streams):
        if length == n:
            cols[:, k] = np.frombuffer(view[pos : pos + length], np.uint8)
        else:
            numcodecs_zstd.decompress(view[pos : pos + length], plane)  # writes at most the n declared
            cols[:, k] = plane


@lru_cache(maxsize=1)
def blosc_decodes() -> bool:
    """Whether this c-blosc decodes our frames as _decode_here does (it may lack zstd); once."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(3000) * 0.02).astype(np.float32).view(np.uint32)
    pieces, _ = _encode_chunk(x, 4, ROTATION["float32"])
    frame = b"".join(bytes(p) for p in pieces)[4:]
    view = memoryview(frame)
    streams = _chunk_streams(view, 0, len(frame), len(x), 4, 0)
    want, got = np.empty(x.nbytes, np.uint8), np.empty(x.nbytes, np.uint8)
    _decode_here(view, (0, len(x), 0, len(frame), streams), 4, want, np.empty(len(x), np.uint8))
    try:
        blosc.decompress(frame, got)
    except Exception:
        return False
    return bool(np.array_equal(want, got))


def _open(blob, dtype: str, shape: tuple[int, ...]) -> tuple[memoryview, int, int, int, list[tuple]]:
    """(bytes, element size, rotation, elements per chunk, chunks) of a planes object of `dtype`
    and `shape`, header and every chunk's lengths checked (see _parse)."""
    view = memoryview(blob).cast("B")
    width = dtypes.get(dtype).itemsize
    if width not in _WORD:
        raise ValueError(f"{dtype} is not stored as planes")
    rot, per, pos = _header(view, width, shape)
    return view, width, rot, per, _parse(view, pos, width, numel(shape), per)


def decode(blob, dtype: str, shape: tuple[int, ...], done=None) -> np.ndarray:
    """The bytes (a flat uint8 array) of the tensor of `dtype` and `shape` stored in `blob`, each
    chunk decoded on a worker thread straight into its place. `done(lo, hi)` after each chunk,
    with the byte range of `blob` it read. ValueError (or zstd's or blosc's error) when `blob` is
    not a planes object of this dtype and shape."""
    view, width, rot, per, jobs = _open(blob, dtype, shape)
    out = memory.empty(numel(shape) * width, np.uint8)
    word = _WORD[width]
    fast = blosc_decodes()

    def one(job) -> None:
        start, n, off, size, streams = job
        chunk = out[start * width : (start + n) * width]
        if not size:
            chunk[:] = 0
            return
        scratch = _buffers.take(n * width)
        if fast:
            blosc.decompress(view[off : off + size], chunk)
        else:
            _decode_here(view, job, width, chunk, scratch)
        if rot:
            _rotr_inplace(chunk.view(word), rot, scratch[: n * width].view(word))
        _buffers.give(scratch)

    def group(jobs: list) -> None:
        for job in jobs:
            one(job)
        if done is not None:
            done(jobs[0][2] - 4, jobs[-1][2] + jobs[-1][3])

    for _ in _run(group, _groups(jobs)):
        pass
    return out


def _run(fn, groups: list):
    """fn over groups, in order: on worker threads when there are several, unless the tensor is
    small and one of several jobs in flight already (clean and checkout store and decode tensors
    in parallel): a pool per tensor then only costs (see NESTED_MIN_CHUNKS)."""
    chunks = sum(len(g) for g in groups)
    if len(groups) > 1 and (chunks > NESTED_MIN_CHUNKS or not parallel.among_others()):
        return parallel.ordered_map(fn, groups)
    return map(fn, groups)


def _groups(items: list) -> list[list]:
    """Consecutive chunks in groups of up to GROUP, as many groups as workers at least: each
    group is one job on a worker thread (a job per 1 MiB chunk cost a checkout of GPT-2-small
    0.1 s of system time here, in thread hand-offs)."""
    size = max(1, min(GROUP, -(-len(items) // config.max_concurrency())))
    return [items[i : i + size] for i in range(0, len(items), size)]


def decode_sample(blob, dtype: str, shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """The smallest chunk of a stored tensor decoded alone: (its first element, its bytes)."""
    view, width, rot, per, jobs = _open(blob, dtype, shape)
    if not jobs:
        raise ValueError("it stores no elements")
    start, n, off, size, _ = min(jobs, key=lambda job: job[1])
    one = _head(width, rot, per, (n,)) + bytes(view[off - 4 : off + size])
    return start, decode(one, dtype, (n,))
