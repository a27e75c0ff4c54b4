"""Tensor <-> stored bytes.

New objects of float32, bfloat16 and float16 tensors, and the unsigned words of changes, are byte
planes compressed by zstd (git_theta.planes: on all-MiniLM-L6-v2 0.818 of the raw size in float32
and 0.662 in bfloat16, against 0.860 and 0.749 for the zarr layout below and 0.819 and 0.665 for
ZipNN; a fine-tune's bit delta 0.29 against 0.34 and ZipNN's 0.39). Every other tensor, objects
written with GIT_THETA_CODEC=blosc, and every object written before are a zarr v2 array (blosc
chunks) packed with msgpack; decode tells the two apart by their first bytes.

The zarr layout was chosen by measurement on GPT-2-small's N(0, 0.02) weights (all tensors, 2
cores, 8 MB chunks):

    blosc codec               fp32 ratio  bf16 ratio  encode     decode
    lz4 level 9, bit-shuffle  0.878       0.755       ~950 MB/s  ~1.3 GB/s   <- used
    zstd level 3, bit-shuffle 0.877       0.754       ~640 MB/s  ~1.0 GB/s
    zstd level 3, byte-shuffle 0.895      -           ~270 MB/s  ~0.6 GB/s
    zstd level 1, byte-shuffle 0.922      -           ~460 MB/s  ~0.5 GB/s

Bit-shuffle exposes the exponent bits, after which lz4 compresses as well as zstd at a higher speed.
One whole-tensor chunk encodes at ~130 MB/s (no parallelism), hence the chunking. The codec's name
is recorded per parameter, so stored objects stay readable if the choice changes.

The chunks are compressed and decompressed by numcodecs' Blosc straight from and into the tensor's
memory (git_theta/chunks.py; same bytes on disk): on GPT-2-small, 2 cores, decode 1.1-1.6 GB/s and
encode 1.6-1.8 GB/s, against 0.4-0.9 and ~0.95 GB/s through tensorstore, which stays for any other
zarr layout.
"""

import json
import mmap
import threading
from functools import cache

import msgpack
import numpy as np

from git_theta import chunks as blosc_chunks
from git_theta import config, dtypes, memory, planes
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor, numel

NAME = "planes-zstd-1"  # recorded in new entries: planes where usable, else the zarr layout below
BLOSC_NAME = "zarr-blosc-lz4-9-bitshuffle"  # recorded in entries written before
CHUNK_BYTES = 8 << 20
SLAB_BYTES = 64 << 20
DECODE_SLAB_BYTES = (
    2 * CHUNK_BYTES
)  # two chunks: both cores busy; peak of a GPT-2-small v3 checkout 510-590 MB, 610-640 with four
_COMPRESSOR = {"id": "blosc", "cname": "lz4", "clevel": 9, "shuffle": 2}
BLOSC = _COMPRESSOR  # pass as `compressor` to write the zarr layout whatever the dtype
# Changes (bit-pattern differences) use the default codec too: planes store the bit delta of a
# small fine-tune of MiniLM's float32 weights in 0.286 of the raw size, blosc (lz4, bit-shuffle)
# in 0.338, ZipNN (on the XOR of the two versions) in 0.386.
DELTA_COMPRESSOR = None


def _planes_on() -> bool:
    """Whether new objects use planes (GIT_THETA_CODEC / theta.codec: planes, the default, or blosc)."""
    return config.get_choice("codec") == "planes"


def zero_chunk_bytes(dtype: str) -> int:
    """Bytes of the chunks an all-zero stretch of a change (1-D words, skip_zero) is left out in."""
    return planes.CHUNK_BYTES if planes.usable(dtype) and _planes_on() else CHUNK_BYTES


def name_of(compressor: dict | None) -> str:
    """The codec name an entry records for objects written with `compressor` (None: the default)."""
    return NAME if compressor is None and _planes_on() else BLOSC_NAME


def chunk_shape(shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES) -> list[int]:
    """Chunks of about `target` bytes: trailing dimensions whole, the next one split."""
    chunks = [max(1, s) for s in shape]
    budget = max(1, target // itemsize)
    acc = 1
    for i in range(len(shape) - 1, -1, -1):
        size = max(1, shape[i])
        if acc * size <= budget:
            acc *= size
            continue
        chunks[i] = max(1, budget // acc)
        for j in range(i):
            chunks[j] = 1
        break
    return chunks


def _bin_header(n: int) -> bytes:
    """msgpack's bin header, so chunk bytes are written straight through without a copy."""
    if n < 256:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 65536:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _spec(dtype: dtypes.DType, shape, chunks, compressor: dict, skip_zero: bool) -> dict:
    metadata = {"shape": list(shape), "chunks": chunks, "compressor": compressor, "order": "C"}
    if skip_zero:
        metadata["fill_value"] = 0
        metadata["dtype"] = np.dtype(dtype.numpy()).str
    return {
        "driver": "zarr",
        "kvstore": {"driver": "memory"},
        "metadata": metadata,
        "dtype": dtype.storage,
        "store_data_equal_to_fill_value": not skip_zero,
    }


_encoders = threading.local()
_ENCODERS_KEPT = 64


def _kept(local: threading.local, key, open_new):
    """A per-thread least-recently-used map of opened tensorstore objects: `open_new()` on a miss."""
    kept = getattr(local, "kept", None)
    if kept is None:
        kept = local.kept = {}
    value = kept.pop(key, None)
    if value is None:
        value = open_new()
        while len(kept) >= _ENCODERS_KEPT:
            kept.pop(next(iter(kept)))
    kept[key] = value  # most recently used last
    return value


def _encoder(key: tuple, dt: dtypes.DType, chunks: list[int], compressor: dict):
    """(zarr store, its in-memory kvstore, its .zarray) for arrays of spec `key`, kept per thread:
    opening one costs more than encoding a small tensor, and models repeat shapes. Every chunk
    written is deleted once emitted, so a kept store holds only its .zarray."""

    def open_new():
        import tensorstore as ts  # imported when first needed: a checkout never needs it (0.03 s)

        ctx = ts.Context()
        store = ts.open(_spec(dt, key[1], chunks, compressor, key[4]), create=True, context=ctx).result()
        kv = ts.KvStore.open({"driver": "memory"}, context=ctx).result()
        return store, kv, kv.read(b".zarray").result().value

    return _kept(_encoders, key, open_new)


def encode(tensor: RawTensor, sink, compressor: dict | None = None, skip_zero: bool = False) -> None:
    """Write `tensor`'s stored form to `sink` (anything with .write).

    With the default `compressor`, a tensor of a dtype git_theta.planes takes is stored as planes
    (all-zero chunks then cost only their headers, `skip_zero` or not). Otherwise the zarr layout:
    the array goes through tensorstore a slab of chunks at a time and each compressed chunk is
    streamed out and dropped at once, so memory stays near one slab, not the tensor.
    `skip_zero` (1-D unsigned tensors: changes) leaves all-zero chunks out; they read back as 0,
    so the unchanged parts of a tensor cost nothing.
    """
    if compressor is None and planes.usable(tensor.dtype) and _planes_on():
        planes.encode(tensor.data, tensor.dtype, tuple(tensor.shape), sink)
        return
    dt = dtypes.get(tensor.dtype)
    array = np.frombuffer(tensor.data, dtype=dt.numpy()).reshape(tensor.shape)
    skip_zero = skip_zero and array.ndim == 1 and dt.kind == "u"
    chunks = chunk_shape(tensor.shape, dt.itemsize)
    key = (
        dt.name,
        tuple(tensor.shape),
        tuple(chunks),
        tuple(sorted((compressor or _COMPRESSOR).items())),
        skip_zero,
    )
    store, kv, zarray = _encoder(key, dt, chunks, compressor or _COMPRESSOR)
    plan = blosc_chunks.runs(tuple(tensor.shape), chunks)
    if plan is not None and blosc_chunks.usable(compressor or _COMPRESSOR, dt.itemsize):
        _encode_chunks(zarray, array, plan, compressor or _COMPRESSOR, skip_zero, sink)
        return
    try:
        _encode_with(store, kv, zarray, array, tensor.shape, chunks, skip_zero, sink)
    except BaseException:
        _encoders.kept.pop(key, None)  # chunks may be left in its kvstore: never reuse it
        raise


def _encode_chunks(zarray: bytes, array: np.ndarray, plan, compressor: dict, skip_zero: bool, sink) -> None:
    """encode() through numcodecs' Blosc, chunk by chunk on worker threads (see git_theta.chunks)."""
    flat = array.reshape(-1).view(f"u{array.dtype.itemsize}")
    count = len(plan)
    if skip_zero:
        count = sum(1 for run in plan if flat[run.start : run.start + run.length].any())
    packer = msgpack.Packer()
    sink.write(packer.pack_map_header(count + 1))
    _put(b".zarray", zarray, sink, packer)
    for key, frame in blosc_chunks.compress(flat, plan, compressor, skip_zero):
        _put(key.encode(), frame, sink, packer)


def _encode_with(
    store, kv, zarray: bytes, array: np.ndarray, shape, chunks: list[int], skip_zero: bool, sink
) -> None:
    count = 1
    for size, chunk in zip(shape, chunks):
        count *= -(-size // chunk)
    if array.size == 0:
        count = 0
    elif skip_zero:
        step = chunks[0]
        count = sum(1 for i in range(0, array.size, step) if array[i : i + step].any())
    packer = msgpack.Packer()
    sink.write(packer.pack_map_header(count + 1))
    _put(b".zarray", zarray, sink, packer)
    if not count:
        return
    if not shape or (count == 1 and list(chunks) == list(shape)):  # one chunk: its key is known
        store.write(array).result()
        _emit(kv, ".".join("0" * max(1, len(shape))).encode(), sink, packer)
        return
    row_bytes = array.nbytes // shape[0]
    step = chunks[0] * max(1, SLAB_BYTES // max(1, chunks[0] * row_bytes))
    for start in range(0, shape[0], step):
        stop = min(start + step, shape[0])
        store[start:stop].write(array[start:stop]).result()
        for key in sorted(k for k in kv.list().result() if k != b".zarray"):
            _emit(kv, key, sink, packer)


def _emit(kv, key: bytes, sink, packer) -> None:
    """Stream one stored chunk out as msgpack and drop it from memory."""
    _put(key, kv.read(key).result().value, sink, packer)
    del kv[key]


def _put(key: bytes, value: bytes, sink, packer) -> None:
    sink.write(packer.pack(key.decode("utf-8")))
    sink.write(_bin_header(len(value)))
    sink.write(value)


def _chunks(view: memoryview, ends: dict | None = None) -> dict[str, memoryview]:
    """Parse the msgpack map of key -> bin that `encode` writes, as views (no copies).

    By hand because msgpack's Unpacker copies every bin, while the chunks are decompressed
    straight from the mapped object (git_theta.chunks). benchmarks/bench_lowlevel.py, all of
    GPT-2-small decoded, medians of 15 interleaved rounds on a loaded 2-core VM: 2.10 s wall,
    0.83 s CPU, 225 MB peak against 2.96 s, 1.10 s, 447 MB on Unpacker; the parse alone 9 M
    instructions against ~160 M. Strict bounds: a malformed map is a ValueError."""
    packer_err = ValueError("not a msgpack map of chunks")
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(view):
            raise packer_err
        out = view[pos : pos + n]
        pos += n
        return out

    head = take(1)[0]
    if 0x80 <= head <= 0x8F:
        count = head & 0x0F
    elif head == 0xDE:
        count = int.from_bytes(take(2), "big")
    elif head == 0xDF:
        count = int.from_bytes(take(4), "big")
    else:
        raise packer_err
    out = {}
    for _ in range(count):
        tag = take(1)[0]
        if 0xA0 <= tag <= 0xBF:
            klen = tag & 0x1F
        elif tag in (0xD9, 0xDA, 0xDB):
            klen = int.from_bytes(take({0xD9: 1, 0xDA: 2, 0xDB: 4}[tag]), "big")
        else:
            raise packer_err
        key = bytes(take(klen)).decode("utf-8")
        tag = take(1)[0]
        if tag not in (0xC4, 0xC5, 0xC6):
            raise packer_err
        vlen = int.from_bytes(take({0xC4: 1, 0xC5: 2, 0xC6: 4}[tag]), "big")
        out[key] = take(vlen)
        if ends is not None:
            ends[key] = pos
    if pos != len(view):
        raise packer_err
    return out


def _release(blob, lo: int = 0, hi: int | None = None) -> None:
    """Drop a mapped object's pages in [lo, hi) from this process (they stay in the page cache):
    a mapping's touched pages count as our memory until unmapped."""
    if isinstance(blob, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        page = mmap.PAGESIZE
        start = lo // page * page
        stop = len(blob) if hi is None else hi
        if stop > start:
            try:
                blob.madvise(mmap.MADV_DONTNEED, start, stop - start)
            except (OSError, ValueError):
                pass


_decoders = threading.local()


def _decoder(zarray: bytes):
    """(in-memory kvstore, zarr store) opened on this .zarray, kept per thread like _encoder;
    every chunk key written is deleted after it is read."""

    def open_new():
        import tensorstore as ts

        ctx = ts.Context()
        kv = ts.KvStore.open({"driver": "memory"}, context=ctx).result()
        kv.write(".zarray", zarray).result()
        return (
            kv,
            ts.open({"driver": "zarr", "kvstore": {"driver": "memory"}}, open=True, context=ctx).result(),
        )

    return _kept(_decoders, zarray, open_new)


def decode(blob, dtype: str, shape: tuple[int, ...], what: str = "tensor") -> RawTensor:
    """Rebuild a tensor from its stored form; a clear error when the blob is not one.

    Chunks go through tensorstore a slab at a time into one output array, so decoding needs
    the output plus about one slab, not a second copy of the compressed tensor.
    """
    dt = dtypes.get(dtype)
    try:
        if planes.is_planes(blob):
            _release(blob)  # the pages the checksum touched
            out = planes.decode(blob, dt.name, tuple(shape), done=lambda lo, hi: _release(blob, lo, hi))
            return RawTensor(dt.name, tuple(shape), memoryview(out))
        view = memoryview(blob)
        ends: dict[str, int] = {}
        entries = _chunks(view, ends)
        _release(blob)  # the pages the checksum touched
        zarray = bytes(entries.pop(".zarray"))
        plan = _fast_plan(zarray, dt, tuple(shape))
        if plan is not None:
            _check_grid(zarray, tuple(shape), entries, dt.itemsize)
            return RawTensor(
                dt.name, tuple(shape), memoryview(_decode_chunks(plan, entries, ends, blob, dt, shape))
            )
        kv, store = _decoder(zarray)
        if (
            tuple(store.shape) != tuple(shape)
            or store.dtype.name != np.dtype(dt.numpy()).name
            and store.dtype.name != dt.storage
        ):
            raise ValueError(
                f"stored {store.dtype.name}{list(store.shape)}, metadata says {dt.name}{list(shape)}"
            )
        _check_grid(zarray, tuple(shape), entries, dt.itemsize)
        if not numel(shape):
            array = np.zeros(shape, dtype=dt.numpy())
        elif not shape:
            for key, value in entries.items():
                kv.write(key, bytes(value)).result()
            array = store.read().result()
            for key in entries:
                del kv[key]
        else:
            array = _read_slabs(store, kv, entries, ends, blob)
    except ThetaError:
        getattr(_decoders, "kept", {}).clear()  # chunks may be left in a kept kvstore: never reuse one
        raise
    except Exception as exc:
        getattr(_decoders, "kept", {}).clear()
        raise ThetaError(f"stored data of {what} is corrupt ({exc})") from None
    return RawTensor(
        dt.name, tuple(shape), memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    )


@cache
def _zarr_dtype(name: str) -> str:
    """The .zarray `dtype` tensorstore writes for one of our dtypes ('<f4', 'bfloat16', ...;
    tests/test_codec.py checks every one against tensorstore), known without importing it."""
    storage = dtypes.get(name).storage
    if storage.startswith(("bfloat16", "float8")):
        return storage
    return np.dtype(storage).str


def _fast_plan(zarray: bytes, dt: dtypes.DType, shape: tuple[int, ...]) -> dict | None:
    """{key: Run} when the stored array can be decoded by git_theta.chunks (a blosc zarr array
    of this dtype and shape, C order, no filters, contiguous chunks); None for tensorstore."""
    try:
        meta = json.loads(zarray)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 2 or meta.get("order") != "C":
        return None
    if meta.get("filters") is not None or meta.get("fill_value") not in (None, 0):
        return None
    if meta.get("shape") != list(shape) or meta.get("dtype") != _zarr_dtype(dt.name):
        return None
    if meta.get("dimension_separator", ".") != "." or not blosc_chunks.usable(
        meta.get("compressor"), dt.itemsize
    ):
        return None
    chunks = meta.get("chunks")
    if not isinstance(chunks, list) or not all(type(c) is int and c > 0 for c in chunks):
        return None
    if numel(chunks) * dt.itemsize > _MAX_CHUNK:
        return None
    plan = blosc_chunks.runs(shape, chunks)
    return None if plan is None else {run.key: run for run in plan}


def _decode_chunks(plan: dict, entries: dict, ends: dict, blob, dt: dtypes.DType, shape) -> np.ndarray:
    """The tensor's bytes, each chunk decompressed straight into its place (see git_theta.chunks);
    chunks left out (change parts: all zero) read as 0."""
    out = memory.empty(numel(shape) * dt.itemsize, np.uint8)
    if len(entries) < len(plan):
        for key, run in plan.items():
            if key not in entries:
                out[run.start * dt.itemsize : (run.start + run.length) * dt.itemsize] = 0
    # each chunk's compressed pages are dropped from this process once decoded (see _release)
    blosc_chunks.decompress_into(
        out,
        plan,
        entries,
        dt.itemsize,
        done=lambda key: _release(blob, ends[key] - len(entries[key]), ends[key]),
    )
    return out


def decode_sample(blob, dtype: str, shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """The smallest stored chunk of a tensor, decoded alone: (its first element in C order, its
    bytes); every chunk of either layout is one run of elements.

    A guess at what a whole tensor holds for a fraction of a decode (the last chunk of GPT-2's
    embedding is 3.4 MB of 154 MB); ThetaError when the blob is not a stored tensor."""
    dt = dtypes.get(dtype)
    try:
        if planes.is_planes(blob):
            return planes.decode_sample(blob, dt.name, tuple(shape))
        entries = _chunks(memoryview(blob))
        zarray = bytes(entries.pop(".zarray"))
        plan = _fast_plan(zarray, dt, tuple(shape))
        if plan is None or not entries:
            raise ValueError("not a chunked blosc array of this shape")
        _check_grid(zarray, tuple(shape), entries, dt.itemsize)
        key = min(entries, key=lambda k: plan[k].length)
        run, frame = plan[key], entries[key]
        if blosc_chunks.frame_size(frame) != run.full * dt.itemsize:
            raise ValueError(f"chunk {key} is not of its chunk's size")
        scratch = np.empty(run.full * dt.itemsize, dtype=np.uint8)
        blosc_chunks.blosc.decompress(frame, scratch)
    except ThetaError:
        raise
    except Exception as exc:
        raise ThetaError(f"stored data of a tensor is corrupt ({exc})") from None
    return run.start, scratch[: run.length * dt.itemsize]


_MAX_CHUNK = 1 << 30  # bytes of one decoded chunk; ours are CHUNK_BYTES


def _check_grid(zarray: bytes, shape: tuple[int, ...], entries: dict, itemsize: int) -> None:
    """Before anything is allocated: the stored chunks can produce the array the metadata
    claims. A dense array stores every chunk of its grid (a few hundred bytes claiming
    gigabytes are refused); only change parts (fill value 0, see encode's skip_zero) may leave
    all-zero chunks out, and their callers bound their size (updates.delta.unpack_parts)."""
    import json

    meta = json.loads(zarray)
    chunks = meta["chunks"]
    if (
        not isinstance(chunks, list)
        or len(chunks) != len(shape)
        or not all(type(c) is int and c > 0 for c in chunks)
        or numel(chunks) * itemsize > _MAX_CHUNK
    ):
        raise ValueError(f"malformed chunk shape {str(chunks)[:60]}")
    grid = [-(-s // c) for s, c in zip(shape, chunks)]
    for key in entries:
        index = [int(i) for i in key.split(".")] if shape else [int(key)]
        if len(index) != max(1, len(shape)) or not all(0 <= i < g for i, g in zip(index, grid or [1])):
            raise ValueError(f"chunk {key[:40]!r} lies outside the array")
    expected = numel(grid)
    if meta.get("fill_value") is None and len(entries) != expected:
        raise ValueError(f"it holds {len(entries)} of the {expected} chunks its shape needs")


def _read_slabs(store, kv, entries: dict[str, memoryview], ends: dict[str, int], blob) -> np.ndarray:
    """Fill one output array slab by slab (rows of chunks along the first axis)."""
    if len(entries) == 1 and tuple(store.chunk_layout.read_chunk.shape) == tuple(store.shape):
        ((key, value),) = entries.items()  # one whole chunk (most small tensors): no slab planning
        kv.write(key, bytes(value)).result()
        out = store.read().result()
        del kv[key]
        return out
    rows = store.chunk_layout.read_chunk.shape[0]
    out = memory.empty(store.shape, store.dtype.numpy_dtype)
    # tensorstore decodes straight into `out`: a read() would return each slab in fresh memory,
    # copied again (GPT-2-small, one thread: 0.2-0.5 s of system time against 0.2-1.3 s)
    import tensorstore as ts

    target = ts.array(out, copy=False, write=True)
    row_bytes = out.nbytes // max(1, out.shape[0])
    step = rows * max(1, DECODE_SLAB_BYTES // max(1, rows * row_bytes))
    by_row: dict[int, list[str]] = {}
    for key in entries:
        by_row.setdefault(int(key.split(".")[0]), []).append(key)
    for start in range(0, out.shape[0], step):
        stop = min(start + step, out.shape[0])
        keys = [k for r in range(start // rows, -(-stop // rows)) for k in by_row.get(r, [])]
        for key in keys:
            kv.write(key, bytes(entries[key])).result()
        target[start:stop].write(store[start:stop]).result()
        for key in keys:
            del kv[key]
        if keys:
            _release(blob, 0, max(ends[k] for k in keys))
    return out
