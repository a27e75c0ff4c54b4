"""GGUF reader and writer: byte-identical round trips of files from the gguf package's writer."""

import io
import struct

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats.detect import by_name, detect
from git_theta.tensor import RawTensor, TensorSpec
from tests import ggufs


def round_trip(data: bytes, path: str = "m.gguf") -> tuple:
    fmt = by_name("gguf")
    ck = fmt.read(memoryview(data), path)
    out = io.BytesIO()
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    fmt.write(ck.layout, specs, ck.tensors.values(), out, path)
    return ck, out.getvalue()


@pytest.mark.parametrize("alignment", [None, 64, 4096])
def test_mixed_quantized_file_comes_back_byte_identical(tmp_path, alignment):
    path = str(tmp_path / "m.gguf")
    ggufs.write(path, ggufs.small_llm(), alignment=alignment)
    data = open(path, "rb").read()
    assert detect(path, data[:64]).name == "gguf"
    ck, again = round_trip(data)
    assert again == data
    assert ck.layout["gaps"] is None  # the writer's own padding: nothing extra recorded
    assert ck.tensors["blk.0.ffn_down.weight"].dtype == "uint8"
    assert ck.tensors["blk.0.ffn_down.weight"].shape == (4, 144)
    assert ck.tensors["token_embd.weight"].dtype == "float32"
    assert ck.tensors["blk.0.attn_norm.weight"].dtype == "bfloat16"
    shown = by_name("gguf").encoded_tensors(ck.layout)
    assert shown == {
        "blk.0.attn_q.weight": "Q8_0[8, 64]",
        "blk.0.attn_k.weight": "Q4_0[8, 64]",
        "blk.0.ffn_up.weight": "Q5_1[4, 64]",
        "blk.0.ffn_down.weight": "Q4_K[4, 256]",
    }


def test_key_values_are_kept_with_their_types(tmp_path):
    path = str(tmp_path / "m.gguf")
    ggufs.write(path, ggufs.small_llm())
    ck, _ = round_trip(open(path, "rb").read())
    kv = {k: (t, v) for k, t, v in ck.layout["kv"]}
    assert kv["llama.block_count"] == ("u32", 1)
    assert kv["test.flag"] == ("bool", 1)
    assert kv["general.name"] == ("str", "tïny")
    assert kv["test.nan"][1] == {"bits": struct.unpack("<I", struct.pack("<f", float("nan")))[0]}
    assert kv["tokenizer.ggml.tokens"][1][1][:2] == ["tok0", "tok1"]


def test_non_canonical_padding_is_kept(tmp_path):
    path = str(tmp_path / "m.gguf")
    ggufs.write(path, ggufs.small_llm(), extra_kv=False)
    data = bytearray(open(path, "rb").read())
    data[-1:] = b"\x07"  # a non-zero byte in the tail padding is kept too
    ck, again = round_trip(bytes(data))
    assert ck.layout["gaps"] is not None and again == bytes(data)


def test_writer_takes_new_values_and_refuses_floats_for_quantized(tmp_path):
    path = str(tmp_path / "m.gguf")
    ggufs.write(path, ggufs.small_llm())
    fmt = by_name("gguf")
    ck = fmt.read(memoryview(open(path, "rb").read()), path)
    tensors = dict(ck.tensors)
    tensors["token_embd.weight"] = RawTensor.from_numpy(np.full((16, 64), 2.0, np.float32))
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()]
    out = io.BytesIO()
    fmt.write(ck.layout, specs, tensors.values(), out, path)
    (tmp_path / "new.gguf").write_bytes(out.getvalue())
    back = ggufs.read(str(tmp_path / "new.gguf"))
    assert np.frombuffer(back["token_embd.weight"][2], np.float32).tolist() == [2.0] * 1024
    assert back["blk.0.ffn_down.weight"][:2] == ("Q4_K", [4, 256])
    tensors["blk.0.attn_q.weight"] = RawTensor.from_numpy(np.zeros((8, 64), np.float32))
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()]
    with pytest.raises(CheckpointError, match=r"Q8_0\[8, 64\].*uint8\[8, 68\], not float32\[8, 64\]"):
        fmt.write(ck.layout, specs, tensors.values(), io.BytesIO(), path)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda d: d[:4] + struct.pack("<I", 1) + d[8:], "GGUF version 1 is not supported"),
        (lambda d: d[:4] + struct.pack(">I", 3) + d[8:], "big-endian GGUF is not supported"),
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:8] + struct.pack("<Q", 1 << 60) + d[16:], "more entries than the file can hold"),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path, mangle, message):
    path = str(tmp_path / "m.gguf")
    ggufs.write(path, ggufs.small_llm())
    with pytest.raises(CheckpointError) as exc:
        by_name("gguf").read(memoryview(mangle(open(path, "rb").read())), path)
    assert message in str(exc.value) and "\n" not in str(exc.value) and "m.gguf" in str(exc.value)
