"""Content verification modes (GIT_THETA_VERIFY): an entry this repository stored or checked is
trusted (`once`, the default), every tensor is checked (`always`), or none (`0`)."""

import os
import subprocess

import numpy as np
import pytest

from git_theta.errors import ThetaError
from git_theta.storage import verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry
from git_theta.updates.storing import store_tensor


@pytest.fixture
def store(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path / "r")], check=True)
    return LfsStore.for_cwd(str(tmp_path / "r"))


def _stored(store, seed: int = 0):
    value = RawTensor.from_numpy(np.random.default_rng(seed).standard_normal((64, 64)).astype(np.float32))
    return value, store_tensor(value, store, "w")


def _flip_a_byte_keeping_the_name(store, oid: str) -> None:
    path = store.path(oid)
    os.chmod(path, 0o644)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize(
    "value,expected", [("", "once"), ("once", "once"), ("1", "always"), ("always", "always"), ("0", "off")]
)
def test_modes(monkeypatch, value, expected):
    monkeypatch.setenv("GIT_THETA_VERIFY", value)
    assert verified.mode() == expected


def test_unknown_mode_is_refused(monkeypatch):
    monkeypatch.setenv("GIT_THETA_VERIFY", "sometimes")
    with pytest.raises(ThetaError, match="GIT_THETA_VERIFY='sometimes'"):
        verified.mode()


def test_an_entry_not_on_record_is_checked_and_a_mismatch_refused(store, monkeypatch):
    monkeypatch.setenv("GIT_THETA_VERIFY", "once")
    value, entry = _stored(store)
    other, other_entry = _stored(store, 1)
    forged = entry.replace(oid=other_entry.oid, size=other_entry.size)
    assert not verified.is_verified(store, forged)
    with pytest.raises(ThetaError, match="does not match the content hash"):
        load_entry(forged, store, "w")


def test_once_trusts_a_recorded_entry_and_always_checks_it(store, monkeypatch):
    value, entry = _stored(store)
    verified.record(store, [entry])
    _flip_a_byte_keeping_the_name(store, entry.oid)
    monkeypatch.setenv("GIT_THETA_VERIFY", "always")
    with pytest.raises(ThetaError, match="corrupt"):  # named as a corrupt object, not a forged entry
        load_entry(entry, store, "w")
    monkeypatch.setenv("GIT_THETA_VERIFY", "once")
    try:  # trusted: decoded without hashing (a flipped byte may still fail to decode)
        load_entry(entry, store, "w")
    except ThetaError as exc:
        assert "content hash" not in str(exc)
    with pytest.raises(ThetaError, match="corrupt"):  # fsck's way: always checks
        load_entry(entry, store, "w", verify=True)


def test_off_still_checks_objects_by_their_oid(store, monkeypatch):
    value, entry = _stored(store)
    _flip_a_byte_keeping_the_name(store, entry.oid)
    monkeypatch.setenv("GIT_THETA_VERIFY", "0")
    with pytest.raises(ThetaError, match="checksum mismatch"):
        load_entry(entry, store, "w")
