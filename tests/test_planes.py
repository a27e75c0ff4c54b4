"""Byte planes + zstd (git_theta.planes): lossless for every dtype it takes, chunked, streamed,
smaller than the blosc layout on weights, and hostile input refused before anything is allocated."""

import io
import struct

import ml_dtypes
import msgpack
import numpy as np
import pytest

from git_theta import codec, dtypes, planes
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor
from tests.conftest import FailingSink


def encode(t: RawTensor, compressor=None, skip_zero=False) -> bytes:
    sink = io.BytesIO()
    codec.encode(t, sink, compressor, skip_zero)
    return sink.getvalue()


def round_trip(array: np.ndarray, dtype: str | None = None) -> bytes:
    t = RawTensor.from_numpy(array, dtype)
    blob = encode(t)
    back = codec.decode(blob, t.dtype, t.shape)
    assert bytes(back.data) == bytes(t.data) and back.shape == t.shape and back.dtype == t.dtype
    return blob


HEAD1 = planes.HEADER.size + 8  # the header of a 1-D tensor


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 KiB, so small tensors have many."""
    monkeypatch.setattr(planes, "CHUNK_BYTES", 4096)


def weights(shape, dtype=np.float32, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 0.02).astype(dtype)


@pytest.mark.parametrize(
    "dtype, array",
    [
        ("float32", weights((300, 200))),
        ("bfloat16", weights((300, 200), ml_dtypes.bfloat16)),
        ("float16", weights((300, 200), np.float16)),
        ("uint32", np.random.default_rng(1).integers(0, 1 << 32, 5000, dtype=np.uint32)),
        ("uint16", np.random.default_rng(1).integers(0, 40, 5000).astype(np.uint16)),
    ],
)
def test_round_trips_every_dtype_it_takes(dtype, array, small_chunks):
    blob = round_trip(array, dtype)
    assert planes.is_planes(blob) and blob[:4] == planes.MAGIC


def test_floats_with_every_special_value():
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, 1.0, -2.5], np.float32)
    bits = special.view(np.uint32).copy()
    bits[4] = 0x7FC01234  # a NaN payload
    round_trip(bits.view(np.float32))
    round_trip(special.astype(ml_dtypes.bfloat16), "bfloat16")
    round_trip(special[np.isfinite(special) & (np.abs(special) < 6e4)].astype(np.float16))
    round_trip(np.arange(1 << 16, dtype=np.uint16).view(np.float16))  # every float16 pattern


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (7, 3)])
def test_empty_and_scalar_tensors(shape):
    round_trip(weights(shape))


def test_many_chunks_with_a_short_last_one(small_chunks):
    array = weights(10_000 + 7)
    blob = round_trip(array)
    width, count = 4, array.size
    per = 4096 // width
    assert len(blob) > HEAD1 + -(-count // per) * 4 * width  # every chunk has its header
    start, sample = codec.decode_sample(blob, "float32", array.shape)
    assert start == count // per * per and len(sample) == (count - start) * width  # the short one
    assert bytes(sample) == array.tobytes()[start * width :]


def chunks_of(blob: bytes, dtype: str, shape: tuple) -> list[tuple]:
    """(first element, elements, frame offset, frame size, streams) of each stored chunk."""
    view, width = memoryview(blob), dtypes.get(dtype).itemsize
    _, per, pos = planes._header(view, width, shape)
    return planes._parse(view, pos, width, int(np.prod(shape)), per)


def test_a_plane_that_does_not_shrink_is_stored_raw(small_chunks):
    noise = np.random.default_rng(2).integers(0, 1 << 32, 4096, dtype=np.uint32)
    blob = round_trip(noise)
    for _, n, _, _, streams in chunks_of(blob, "uint32", noise.shape):
        assert [length for _, length in streams] == [n] * 4  # every plane stored as it is
    # header, then per chunk its length, blosc's header, block start and 4 stream lengths
    assert len(blob) == HEAD1 + 4 * (4 + 16 + 4 + 16 + 4096)


def test_a_plane_skewed_in_one_stretch_is_still_compressed():
    """The probe windows (planes._may_shrink) skip zstd on random planes but must not miss a
    compressible stretch: a 1 MiB chunk of noise whose middle eighth repeats one word."""
    words = np.random.default_rng(3).integers(0, 1 << 32, planes.CHUNK_BYTES // 4, dtype=np.uint32)
    noise_blob = round_trip(words.copy())
    n = len(words)
    words[n * 7 // 16 : n * 9 // 16] = 0x12345678
    blob = round_trip(words)
    [(_, _, _, _, streams)] = chunks_of(blob, "uint32", words.shape)
    assert all(length < 0.9 * n for _, length in streams)  # every plane compressed
    assert len(blob) < len(noise_blob) - 4 * n // 10  # an eighth of each plane nearly free
    [(_, _, _, _, noisy)] = chunks_of(noise_blob, "uint32", words.shape)
    assert [length for _, length in noisy] == [n] * 4


def test_zero_chunks_cost_their_length_only(small_chunks):
    delta = np.zeros(1 << 20, np.uint32)
    delta[5] = 3  # one changed word: one chunk stored
    blob = round_trip(delta)
    chunks = (1 << 20) // 1024
    assert len(blob) < HEAD1 + chunks * 4 + 200
    zeros = encode(RawTensor.from_numpy(np.zeros(1 << 20, np.uint16)))
    assert len(zeros) == HEAD1 + (2 << 20) // 4096 * 4


def test_chunks_under_the_split_size_are_stored_as_they_are(small_chunks):
    array = weights(1024 + planes.MIN_SPLIT - 1)  # a last chunk of 127 elements
    blob = round_trip(array)
    last = chunks_of(blob, "float32", array.shape)[-1]
    assert last[1] == planes.MIN_SPLIT - 1 and last[4] is None and last[3] == 16 + 4 * last[1]


def test_weights_compress_better_than_with_blosc():
    for array in (weights((512, 768)), weights((512, 768), ml_dtypes.bfloat16)):
        t = RawTensor.from_numpy(array)
        ours, old = len(encode(t)), len(encode(t, codec.BLOSC))
        assert ours < 0.97 * old, (array.dtype, ours, old)


def test_other_dtypes_keep_the_blosc_layout():
    for array in (np.arange(100, dtype=np.int64), np.ones(10, bool), np.arange(9, dtype=np.float64)):
        blob = round_trip(array)
        assert not planes.is_planes(blob) and 0x80 <= blob[0] <= 0x8F  # a msgpack map


def test_objects_written_before_still_decode():
    array = weights((3000, 700))
    blob = encode(RawTensor.from_numpy(array), codec.BLOSC)  # the layout every earlier version wrote
    assert not planes.is_planes(blob)
    assert bytes(codec.decode(blob, "float32", array.shape).data) == array.tobytes()
    start, sample = codec.decode_sample(blob, "float32", array.shape)
    assert bytes(sample) == array.tobytes()[start * 4 : start * 4 + len(sample)]


def test_the_codec_setting_chooses_what_new_objects_use(monkeypatch):
    t = RawTensor.from_numpy(weights(100))
    assert codec.name_of(None) == codec.NAME and planes.is_planes(encode(t))
    monkeypatch.setenv("GIT_THETA_CODEC", "blosc")
    assert codec.name_of(None) == codec.BLOSC_NAME and not planes.is_planes(encode(t))
    monkeypatch.setenv("GIT_THETA_CODEC", "lzma")
    with pytest.raises(ThetaError, match="GIT_THETA_CODEC"):
        encode(t)


def test_the_magic_is_never_a_msgpack_map():
    assert not (0x80 <= planes.MAGIC[0] <= 0x8F or planes.MAGIC[0] in (0xDE, 0xDF))
    assert msgpack.packb({}, use_bin_type=True)[0] != planes.MAGIC[0]


def test_encoding_is_deterministic_and_thread_count_free(monkeypatch, small_chunks):
    t = RawTensor.from_numpy(weights(50_000))
    one = encode(t)
    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "1")
    assert encode(t) == one


def test_a_sink_that_fails_midway_stops_the_encode(small_chunks):
    t = RawTensor.from_numpy(weights(100_000))
    with pytest.raises(OSError, match="disk full"):
        codec.encode(t, FailingSink(5, "disk full"))
    round_trip(weights(100_000))  # nothing of the failed attempt leaks into the next


def _corrupt(blob: bytes, dtype="float32", shape=(10_000,)):
    with pytest.raises(ThetaError, match="corrupt"):
        codec.decode(blob, dtype, shape, what="w")


def test_truncated_or_extended_objects_are_refused(small_chunks):
    blob = encode(RawTensor.from_numpy(weights(10_000)))
    for cut in (3, 4, 10, HEAD1, HEAD1 + 3, HEAD1 + 40, len(blob) - 1):
        _corrupt(blob[:cut])
    _corrupt(blob + b"\0")


def test_headers_that_lie_are_refused(small_chunks, decoder):
    blob = bytearray(encode(RawTensor.from_numpy(weights(10_000))))
    with pytest.raises(ThetaError, match="metadata says"):
        codec.decode(bytes(blob), "float32", (10_001,))
    with pytest.raises(ThetaError, match="metadata says"):
        codec.decode(bytes(blob), "float32", (100, 100))
    with pytest.raises(ThetaError, match="metadata says"):
        codec.decode(bytes(blob), "uint16", (20_000,))
    for offset, value in ((4, 2), (6, 32), (7, 31), (8, 33)):  # version, rotation, chunk size, ndim
        bad = bytearray(blob)
        bad[offset] = value
        _corrupt(bytes(bad))
    first = chunks_of(bytes(blob), "float32", (10_000,))[0]
    _, n, off, size, streams = first
    # blosc's header: version, flags (memcpyed), element size, bytes, block size, frame size
    for field, fmt, value in (
        (0, "B", 3),
        (2, "B", 0x02),
        (3, "B", 2),
        (4, "i", 8),
        (8, "i", 4),
        (12, "i", size + 1),
    ):
        bad = bytearray(blob)
        struct.pack_into(fmt, bad, off + field, value)
        _corrupt(bytes(bad))
    bad = bytearray(blob)
    struct.pack_into("<i", bad, off + 16, 24)  # the block's start
    _corrupt(bytes(bad))
    raw = next(pos for pos, length in streams if length == n)
    zstd = next(pos for pos, length in streams if length != n)
    for pos, value in ((raw, n + 1), (raw, 0), (raw, -1), (zstd, 1 << 30)):  # stream lengths
        bad = bytearray(blob)
        struct.pack_into("<i", bad, pos - 4, value)
        _corrupt(bytes(bad))
    bad = bytearray(blob)
    struct.pack_into("<I", bad, off - 4, size + 1)  # the chunk's length
    _corrupt(bytes(bad))


@pytest.fixture(params=["blosc", "here"])
def decoder(request, monkeypatch):
    """Chunks decoded by c-blosc, and by the fallback that decodes planes one by one."""
    if request.param == "here":
        monkeypatch.setattr(planes, "blosc_decodes", lambda: False)
    else:
        assert planes.blosc_decodes()  # else every decode takes the fallback: correct, slower
    return request.param


def build(width: int, n: int, chunks: list) -> bytes:
    """A planes object of chunks of n elements by hand: per chunk None (all zero) or its streams."""
    out = bytearray(planes._head(width, 0, n, (n * len(chunks),)))
    for streams in chunks:
        if streams is None:
            out += bytes(4)
            continue
        size = 20 + sum(4 + len(s) for s in streams)
        out += struct.pack("<I", size) + planes.BLOSC_HEAD.pack(2, 1, 0x81, width, n * width, n * width, size)
        out += struct.pack("<i", 20) + b"".join(struct.pack("<i", len(s)) + s for s in streams)
    return bytes(out)


def test_hand_built_objects_decode(decoder):
    n = planes.MIN_SPLIT
    lo = bytes(range(n))
    zc = planes._compressors.take()
    blob = build(2, n, [[lo, zc.compress(bytes(n))], None])  # a zstd plane of zeros, a zero chunk
    want = np.concatenate([np.arange(n, dtype=np.uint16), np.zeros(n, np.uint16)])
    assert np.array_equal(codec.decode(blob, "uint16", (2 * n,)).numpy(), want)


def test_a_zstd_frame_declaring_another_size_is_refused_before_decompressing(decoder):
    import zstandard

    n = planes.MIN_SPLIT
    zc = zstandard.ZstdCompressor(
        compression_params=zstandard.ZstdCompressionParameters.from_level(1, write_content_size=1)
    )
    bomb = zc.compress(bytes(1 << 24))  # 16 MiB of zeros in a few hundred bytes: never decompressed
    assert planes._frame_size(memoryview(bomb)) == 1 << 24 and len(bomb) < 4096
    with pytest.raises(ThetaError, match="not of its size"):
        codec.decode(build(2, n, [[bytes(n), bomb]]), "uint16", (n,), what="w")
    unsized = zstandard.ZstdCompressor(
        compression_params=zstandard.ZstdCompressionParameters.from_level(1, write_content_size=0)
    ).compress(bytes(n))
    with pytest.raises(ThetaError, match="does not declare its size"):
        codec.decode(build(2, n, [[bytes(n), unsized]]), "uint16", (n,), what="w")
    good = zc.compress(bytes(range(n)))
    assert codec.decode(build(2, n, [[bytes(n), good]]), "uint16", (n,)).numpy()[1] == 256
    with pytest.raises(ThetaError, match="corrupt"):  # declares its size, then holds garbage
        codec.decode(build(2, n, [[bytes(n), good[:6] + b"\xff" * 9]]), "uint16", (n,))


def test_garbage_after_the_magic_is_refused():
    for junk in (b"", b"\x01", bytes(12), b"\xff" * 40):
        _corrupt(planes.MAGIC + junk, shape=(3,))


def test_both_decoders_agree(decoder, small_chunks):
    for array, dtype in ((weights((700, 300)), None), (weights(5000, ml_dtypes.bfloat16), "bfloat16")):
        round_trip(array, dtype)
    round_trip(np.where(np.arange(9000) % 7, 0, np.arange(9000)).astype(np.uint32))


def test_small_tensors_among_other_jobs_start_no_pool_of_their_own(monkeypatch, small_chunks):
    """Clean and checkout run tensors as parallel jobs: inside one, a tensor of a few chunks is
    encoded and decoded on its thread; a large one, or one outside such jobs, still fans out."""
    from git_theta import parallel

    monkeypatch.setenv("GIT_THETA_MAX_CONCURRENCY", "2")
    calls = []
    real = parallel.ordered_map

    def counting(fn, items, *args, **kwargs):
        calls.append(len(items))
        return real(fn, items, *args, **kwargs)

    monkeypatch.setattr(planes.parallel, "ordered_map", counting)
    small = weights(3 * 1024)  # 3 chunks of 4 KiB
    large = weights((planes.NESTED_MIN_CHUNKS + 4) * 1024)

    def job(array):
        return round_trip(array)

    list(real(job, [small, small], ahead=2))
    assert calls == []
    list(real(job, [large], ahead=2))
    assert len(calls) == 2  # its encode and its decode
    round_trip(small)
    assert len(calls) == 4
