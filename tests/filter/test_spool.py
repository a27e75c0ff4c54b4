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
