"""GGUF test files written by the `gguf` package's own writer: plain and mixed quantized tensors."""

import numpy as np

gguf = __import__("pytest").importorskip("gguf")
from gguf.constants import GGMLQuantizationType as Q  # noqa: E402
from gguf.quants import quantize  # noqa: E402


def small_llm(seed: int = 0) -> dict:
    """name -> (array, GGML type or None for plain): F32, F16, BF16, Q8_0, Q4_0, Q5_1 and Q4_K."""
    rng = np.random.default_rng(seed)

    def q(shape, kind):
        return quantize(rng.standard_normal(shape).astype(np.float32), kind), kind

    bf16 = (rng.standard_normal((3, 32)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return {
        "token_embd.weight": (rng.standard_normal((16, 64)).astype(np.float32), None),
        "output_norm.weight": (np.ones(64, np.float16), None),
        "blk.0.attn_q.weight": q((8, 64), Q.Q8_0),
        "blk.0.attn_k.weight": q((8, 64), Q.Q4_0),
        "blk.0.ffn_up.weight": q((4, 64), Q.Q5_1),
        # the gguf package cannot quantize to K-quants: random blocks of the right size stand in
        "blk.0.ffn_down.weight": (rng.integers(0, 256, (4, 144), dtype=np.uint8), Q.Q4_K),
        "blk.0.attn_norm.weight": (bf16, Q.BF16),
        "rope_freqs": (np.arange(4, dtype=np.int32), None),
    }


def write(path: str, tensors: dict, alignment: int | None = None, extra_kv: bool = True) -> None:
    """A GGUF file with llama-like key-values (strings, arrays, NaN, bool) and `tensors`."""
    w = gguf.GGUFWriter(path, "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_block_count(1)
    w.add_context_length(128)
    if extra_kv:
        w.add_float32("test.nan", float("nan"))
        w.add_bool("test.flag", True)
        w.add_string("general.name", "tïny")
        w.add_array("tokenizer.ggml.tokens", [f"tok{i}" for i in range(100)])
        w.add_array("tokenizer.ggml.scores", [float(-i) for i in range(100)])
        w.add_array("tokenizer.ggml.token_type", [1, 2, 3])
    for name, (array, kind) in tensors.items():
        w.add_tensor(name, array, raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read(path: str) -> dict:
    """name -> (GGML type name, logical shape, raw bytes), read back by the gguf package."""
    reader = gguf.GGUFReader(path)
    return {
        t.name: (t.tensor_type.name, [int(d) for d in reversed(t.shape)], bytes(np.asarray(t.data).tobytes()))
        for t in reader.tensors
    }
