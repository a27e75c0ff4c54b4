"""The spool that holds what git streams to the filter: in reserved memory, spilled to a file past
its threshold, and filled straight from pkt-lines."""

import io
import os

import pytest

from git_theta.filter import spool as spool_mod
from git_theta.filter.spool import Spool
from git_theta.git import pktline


def _packets(data: bytes, size: int = 65516) -> io.BufferedReader:
    out = io.BytesIO()
    for i in range(0, len(data), size):
        pktline.write_packet(out, data[i : i + size])
    out.write(pktline.FLUSH)
    return io.BufferedReader(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize("threshold", [1 << 30, 100_000, 0])
def test_content_read_from_pkt_lines_comes_back_whole(tmp_path, threshold):
    data = os.urandom(300_000)
    s = Spool(str(tmp_path), threshold=threshold)
    try:
        view = pktline.read_content(_packets(data, 7_000), s).view()
        assert bytes(view) == data
        assert s.spilled == (threshold < len(data))
        del view
    finally:
        s.close()


def test_writes_past_the_threshold_spill_what_was_held(tmp_path):
    s = Spool(str(tmp_path), threshold=10)
    s.write(b"12345")
    assert not s.spilled
    s.write(b"6789abcdef")
    assert s.spilled
    view = s.view()
    assert bytes(view) == b"123456789abcdef"
    s.release(view[:5])  # a spilled spool drops mapped pages; the content stays readable
    assert bytes(view) == b"123456789abcdef"
    del view
    s.close()


def test_without_address_space_it_grows_a_bytearray(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "_reserve", lambda n: None)
    data = os.urandom(50_000)
    s = Spool(str(tmp_path), threshold=1 << 30)
    view = pktline.read_content(_packets(data, 999), s).view()
    assert bytes(view) == data and isinstance(s.memory, bytearray)
    del view
    s.close()


def test_an_empty_content_is_an_empty_view(tmp_path):
    s = Spool(str(tmp_path), threshold=1 << 30)
    assert bytes(pktline.read_content(_packets(b""), s).view()) == b""
    s.close()


def test_a_truncated_stream_is_refused(tmp_path):
    raw = _packets(os.urandom(1000)).read()[:-10]
    s = Spool(str(tmp_path), threshold=1 << 30)
    with pytest.raises(pktline.PktLineError):
        pktline.read_content(io.BufferedReader(io.BytesIO(raw)), s)
    s.close()


def _source_spool(tmp_path, on_disk: bytes, streamed: bytes, packet: int = 65516) -> tuple[Spool, bytes]:
    path = tmp_path / "model.bin"
    path.write_bytes(on_disk)
    s = Spool(str(tmp_path), threshold=1 << 30, source=str(path))
    return s, bytes(pktline.read_content(_packets(streamed, packet), s).view())


def test_content_that_is_the_source_file_is_read_from_its_pages(tmp_path):
    data = os.urandom(3_000_000)  # several scratch buffers' worth
    s, got = _source_spool(tmp_path, data, data)
    assert got == data and s.from_source and s.memory is None and s.source_unchanged()
    s.close()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d[:1_500_000] + b"x" + d[1_500_001:],  # differs in the middle
        lambda d: d[:-1],  # the stream is shorter than the file
        lambda d: d + b"tail",  # and longer
        lambda d: b"y" + d[1:],  # differs in its first byte
    ],
)
def test_content_that_differs_from_the_source_file_is_copied_whole(tmp_path, change):
    data = os.urandom(2_500_000)
    streamed = change(data)
    s, got = _source_spool(tmp_path, data, streamed, packet=7_001)
    assert got == streamed and not s.from_source
    s.close()


def test_a_source_changed_after_the_comparison_is_noticed(tmp_path):
    data = os.urandom(200_000)
    s, got = _source_spool(tmp_path, data, data)
    assert s.from_source and s.source_unchanged()
    with open(tmp_path / "model.bin", "r+b") as f:  # same size, rewritten in place
        f.write(b"z")
    assert not s.source_unchanged()
    s.close()


def test_a_fifo_symlink_or_missing_source_is_not_used(tmp_path):
    data = os.urandom(100_000)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for reading must not wait for a writer
    (tmp_path / "real").write_bytes(data)
    os.symlink(tmp_path / "real", tmp_path / "link")
    for source in (fifo, tmp_path / "link", tmp_path / "missing", tmp_path):
        s = Spool(str(tmp_path), threshold=1 << 30, source=str(source))
        assert bytes(pktline.read_content(_packets(data), s).view()) == data and not s.from_source
        s.close()


def test_plain_writes_are_compared_with_the_source_too(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "m").write_bytes(data)
    s = Spool(str(tmp_path), threshold=1 << 30, source=str(tmp_path / "m"))
    for i in range(0, len(data), 1 << 20):  # what `git-theta-filter clean` reads from stdin
        s.write(data[i : i + (1 << 20)])
    assert bytes(s.view()) == data and s.from_source
    s.close()
