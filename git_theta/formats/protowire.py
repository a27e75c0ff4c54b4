"""Protobuf's base-128 varints, as the TensorFlow bundle and ONNX readers parse them from bytes
anyone may commit: bounded to protobuf's 10 bytes and to the end the caller gives."""


def varint(buf, pos: int, end: int | None = None) -> tuple[int, int]:
    """(value, position after it) of the varint at buf[pos]; ValueError when truncated or too long."""
    end = len(buf) if end is None else end
    value = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
    raise ValueError("varint longer than 10 bytes")
