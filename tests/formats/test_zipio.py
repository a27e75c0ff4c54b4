"""formats.zipio: the CRC-32 the zip writer stamps is zlib's, whichever library computes it; the
reader gives stored members as views of the archive and refuses a broken one in one line."""

import io
import os
import zipfile
import zlib

import pytest

from git_theta.errors import CheckpointError
from git_theta.formats import zipio


def test_the_checksum_is_zlibs_for_every_length():
    for n in (0, 1, 15, 4096, 1 << 20, (1 << 20) + 7):
        data = os.urandom(n)
        assert zipio.crc32(data) == zlib.crc32(data)
        assert zipio.crc32(memoryview(data)) == zlib.crc32(data)


def test_a_written_archive_passes_zipfiles_own_check():
    out = io.BytesIO()
    writer = zipio.ZipWriter(out, align=64)
    payload = os.urandom(100_000)
    writer.add("archive/data/0", payload)
    writer.add("archive/version", b"3\n", zlib.crc32(b"3\n"))
    writer.close()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        assert zf.testzip() is None and zf.read("archive/data/0") == payload


def _archive() -> bytes:
    out = io.BytesIO()
    writer = zipio.ZipWriter(out, align=64)
    writer.add("archive/data/0", b"\x01" * 1000)
    writer.add("archive/version", b"3\n")
    writer.close()
    return out.getvalue()


def test_stored_members_are_views_of_the_archive_not_copies():
    data = bytearray(_archive())
    entries = zipio.read_entries(memoryview(data), "model.pt")
    assert bytes(entries["archive/version"]) == b"3\n"
    data[data.index(b"\x01" * 1000)] = 2  # the archive changes under the view
    assert entries["archive/data/0"][0] == 2 and len(entries["archive/data/0"]) == 1000


def test_deflated_members_are_inflated():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", b"abc" * 1000)
    ((name, method, content),) = zipio.members(memoryview(out.getvalue()), "w.npz")
    assert (name, method, bytes(content)) == ("w.npy", zipfile.ZIP_DEFLATED, b"abc" * 1000)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # truncated: no end record
        lambda d: d.replace(b"PK\x01\x02", b"PK\x01\x03", 1),  # a central-directory record
        lambda d: d.replace(b"PK\x03\x04", b"PK\x03\x05", 1),  # a member's local header
        lambda d: b"",
    ],
)
def test_a_broken_archive_is_refused_in_one_line_naming_it(damage):
    with pytest.raises(CheckpointError, match="model.pt") as err:
        zipio.read_entries(memoryview(damage(_archive())), "model.pt")
    assert "\n" not in str(err.value)
