"""Git's pkt-line framing, used by the long-running filter protocol in both directions."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import in the hooks: see git_theta.dtypes
if TYPE_CHECKING:
    from typing import BinaryIO

MAX_DATA = 65516  # largest payload of one packet
FLUSH = b"0000"


class PktLineError(Exception):
    """The other side broke the framing or went away."""


def read_packet(stream: BinaryIO) -> bytes | None:
    """One packet's payload; None for a flush packet; EOFError at a clean end of stream."""
    head = stream.read(4)
    if not head:
        raise EOFError
    if len(head) != 4:
        raise PktLineError("truncated pkt-line header")
    size = int(head, 16)
    if size == 0:
        return None
    if size < 4:
        raise PktLineError(f"bad pkt-line length {size}")
    data = stream.read(size - 4)
    if len(data) != size - 4:
        raise PktLineError("truncated pkt-line")
    return data


def read_text_list(stream: BinaryIO) -> list[str]:
    """Text packets up to the next flush, trailing newlines removed."""
    lines = []
    while True:
        pkt = read_packet(stream)
        if pkt is None:
            return lines
        lines.append(pkt.decode("utf-8").rstrip("\n"))


def read_key_values(stream: BinaryIO) -> dict[str, str]:
    """`key=value` packets up to the next flush."""
    out = {}
    for line in read_text_list(stream):
        key, _, value = line.partition("=")
        out[key] = value
    return out


def read_content(stream: BinaryIO, sink=None):
    """Binary packets up to the next flush, into `sink` (anything with .write) or a bytearray."""
    buf = bytearray() if sink is None else sink
    while True:
        head = stream.read(4)
        if len(head) != 4:
            raise PktLineError("stream ended inside content")
        size = int(head, 16)
        if size == 0:
            return buf
        if size < 4:
            raise PktLineError(f"bad pkt-line length {size}")
        room = sink.reserve(size - 4) if sink is not None and hasattr(sink, "reserve") else None
        if room is not None:  # straight into the sink's memory: no packet-sized copies
            with room:
                got = 0
                while got < size - 4:
                    n = stream.readinto(room[got:])
                    if not n:
                        raise PktLineError("truncated pkt-line")
                    got += n
            sink.commit(size - 4)
            continue
        data = stream.read(size - 4)
        if len(data) != size - 4:
            raise PktLineError("truncated pkt-line")
        buf.write(data) if sink is not None else buf.extend(data)


def write_packet(stream: BinaryIO, data: bytes | memoryview) -> None:
    stream.write(b"%04x" % (len(data) + 4))
    stream.write(data)


def write_text(stream: BinaryIO, *lines: str) -> None:
    for line in lines:
        write_packet(stream, (line + "\n").encode("utf-8"))


def write_flush(stream: BinaryIO) -> None:
    """End a message and push it to the other side: every message of the protocol ends with a
    flush packet and the peer may be waiting for it, so a buffered stream (Python's stdout unless
    PYTHONUNBUFFERED is set) must never keep it back."""
    stream.write(FLUSH)
    stream.flush()


class ContentWriter:
    """A file-like sink that frames everything written into pkt-lines of the maximal size."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.pending = bytearray()

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if self.pending:
            take = min(MAX_DATA - len(self.pending), len(view))
            self.pending += view[:take]
            view = view[take:]
            if len(self.pending) == MAX_DATA:
                write_packet(self.stream, self.pending)
                self.pending = bytearray()
        while len(view) >= MAX_DATA:
            write_packet(self.stream, view[:MAX_DATA])
            view = view[MAX_DATA:]
        if len(view):
            self.pending += view
        return n

    def close(self) -> None:
        if self.pending:
            write_packet(self.stream, self.pending)
            self.pending = bytearray()
        write_flush(self.stream)


def client_handshake(w: BinaryIO, r: BinaryIO, capabilities: tuple[str, ...]) -> tuple[list[str], set[str]]:
    """Greet a long-running filter as git does; returns (its greeting, its capabilities)."""
    write_text(w, "git-filter-client", "version=2")
    write_flush(w)
    write_text(w, *(f"capability={c}" for c in capabilities))
    write_flush(w)
    w.flush()
    greeting = read_text_list(r)
    caps = {line.partition("=")[2] for line in read_text_list(r) if line.startswith("capability=")}
    return greeting, caps
