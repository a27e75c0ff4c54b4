"""formats.zipio: the CRC-32 the zip writer stamps is zlib's, whichever library computes it."""

import io
import os
import zipfile
import zlib

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
