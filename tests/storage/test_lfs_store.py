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
