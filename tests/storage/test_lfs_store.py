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
