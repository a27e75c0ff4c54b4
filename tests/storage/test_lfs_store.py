"""The local LFS store: content-addressed, atomic, verified on read."""

import hashlib
import os
import subprocess

import pytest

from git_theta.errors import ThetaError
from git_theta.storage.lfs_store import LfsStore


@pytest.fixture
def store(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    return LfsStore.for_cwd(str(tmp_path / "r"))


def test_put_uses_git_lfs_layout(store):
    oid, size = store.put(b"hello")
    assert oid == hashlib.sha256(b"hello").hexdigest() and size == 5
    assert store.path(oid).endswith(os.path.join("lfs", "objects", oid[:2], oid[2:4], oid))
    assert bytes(store.read(oid)) == b"hello"
    assert store.put(b"hello") == (oid, 5)  # idempotent


def test_abort_leaves_nothing(store):
    w = store.writer()
    w.write(b"partial")
    w.abort()
    assert os.listdir(store.tmp_dir) == []


def test_corrupt_and_missing_objects(store):
    oid, _ = store.put(b"data")
    with open(store.path(oid), "wb") as f:
        f.write(b"dat4")
    with pytest.raises(ThetaError, match="corrupt"):
        store.read(oid, what="parameter 'w'")
    with pytest.raises(ThetaError, match="missing"):
        store.read("0" * 64)


_SIZES = [0, 1, 4095, 4096, 4097, (4 << 20) - 1, 4 << 20, (4 << 20) + 5, 9_999_991]


@pytest.mark.parametrize(
    "setting, bulk, direct",
    [("1", False, True), ("0", True, False), ("auto", True, True), ("auto", False, False)],
)
def test_objects_of_any_size_and_piecing_land_exactly(store, monkeypatch, setting, bulk, direct):
    import random

    monkeypatch.setenv("GIT_THETA_DIRECT_IO", setting)
    store = LfsStore(store.common_dir, bulk=bulk)
    rng = random.Random(0)
    for n in _SIZES:
        data = rng.randbytes(n)
        w = store.writer()
        assert (type(w.file).__name__ == "_DirectFile") == (direct and hasattr(os, "O_DIRECT"))
        pos = 0
        while pos < n:  # pieces of odd sizes, across the staging block's edges
            step = rng.randint(1, 3 << 20)
            w.write(memoryview(data)[pos : pos + step])
            pos += step
        oid, size = w.commit()
        assert (oid, size) == (hashlib.sha256(data).hexdigest(), n)
        with open(store.path(oid), "rb") as f:
            assert f.read() == data
    assert os.listdir(store.tmp_dir) == []


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")
def test_direct_writes_fall_back_to_plain_ones_midway(store):
    """A file system that opens with O_DIRECT but refuses such writes: the rest go plainly."""
    data = os.urandom((4 << 20) * 2 + 123)
    w = LfsStore(store.common_dir, bulk=True).writer()
    w.write(data[: 5 << 20])  # one direct block written, the rest staged
    w.file._plain()
    w.write(data[5 << 20 :])
    oid, size = w.commit()
    with open(store.path(oid), "rb") as f:
        assert f.read() == data and size == len(data)


def test_two_direct_writers_open_on_one_thread_do_not_mix(store):
    bulk = LfsStore(store.common_dir, bulk=True)
    a, b = bulk.writer(), bulk.writer()
    da, db = os.urandom(5 << 20), os.urandom(3 << 20)
    for i in range(0, 5 << 20, 1 << 20):  # interleaved writes
        a.write(da[i : i + (1 << 20)])
        b.write(db[i : i + (1 << 20)])
    (oa, _), (ob, _) = a.commit(), b.commit()
    assert oa == hashlib.sha256(da).hexdigest() and ob == hashlib.sha256(db).hexdigest()
    with open(bulk.path(oa), "rb") as f:
        assert f.read() == da
    with open(bulk.path(ob), "rb") as f:
        assert f.read() == db


def _checkout_file(path):
    from git_theta.storage import lfs_store

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if not lfs_store._direct(fd):
        os.close(fd)
        pytest.skip("this file system takes no O_DIRECT writes")
    return lfs_store._DirectFile(fd, 1 << 20, depth=2, in_place=True)


@pytest.mark.parametrize("header", [8, 1000, 4096, 5000])
def test_placed_tensors_are_written_from_where_they_are_and_the_file_is_exact(tmp_path, header):
    """Tensors decoded at their offset within a page (memory.placed) go to the disk in place;
    the file is the same bytes as written through staging blocks, whatever the offsets."""
    import numpy as np

    from git_theta import memory

    rng = np.random.default_rng(header)
    sizes = [3 << 20, 12, (1 << 20) + 4, 5 << 20, 100, (2 << 20) + 8]
    out = _checkout_file(tmp_path / "model")
    staged = []
    stage = out._stage
    out._stage = lambda mv: (staged.append(len(mv)), stage(mv))
    expected = [rng.integers(0, 255, header, dtype=np.uint8).tobytes()]
    out.write(expected[0])
    position = header
    for n in sizes:
        with memory.placed(n, position):
            tensor = memory.empty((n,), np.uint8)
        tensor[:] = rng.integers(0, 255, n, dtype=np.uint8)
        expected.append(tensor.tobytes())
        out.write(memoryview(tensor))
        del tensor  # the queued write keeps it alive
        position += n
    out.flush()
    out.close()
    small = header + sum(n for n in sizes if n < memory.PLACE_MIN_BYTES)
    large = sum(1 for n in sizes if n >= memory.PLACE_MIN_BYTES)
    assert sum(staged) <= small + large * 2 * 4096  # only partial pages of the large ones
    assert (tmp_path / "model").read_bytes() == b"".join(expected)


def test_a_buffer_that_is_not_a_placed_tensor_is_copied(tmp_path):
    """Memory the caller may reuse after write() returns (not made inside memory.placed) is copied
    at once, even when it happens to sit at the file position's offset within a page."""
    import mmap

    out = _checkout_file(tmp_path / "model")
    area = mmap.mmap(-1, 2 << 20)  # page-aligned, like the file position 0
    area[:] = b"a" * len(area)
    out.write(memoryview(area))
    area[:] = b"b" * len(area)  # reused by its owner as soon as write() returned
    out.flush()
    out.close()
    assert (tmp_path / "model").read_bytes() == b"a" * (2 << 20)


def test_prefetch_reads_ahead_on_a_thread_and_skips_missing_objects(store):
    """A checkout asks for its objects ahead (into the page cache); a missing one is left for
    the read, which names it."""
    import threading

    oid, _ = store.put(b"x" * 10000)
    before = {t.ident for t in threading.enumerate()}
    store.prefetch([oid, "0" * 64])
    for t in threading.enumerate():
        if t.ident not in before and t.name == "git-theta-prefetch":
            t.join(10)
    assert bytes(store.read(oid)) == b"x" * 10000
    with pytest.raises(ThetaError, match="missing"):
        store.read("0" * 64)
