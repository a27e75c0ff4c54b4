"""Tensors as unsigned machine words: exact comparisons and differences of bit patterns."""

import threading

import numpy as np

from git_theta import dtypes, memory
from git_theta.tensor import RawTensor

_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def word_dtype(dtype: str) -> np.dtype:
    """The unsigned type of one word (at most 8 bytes; wider elements are several words)."""
    return np.dtype(_WORD[min(dtypes.get(dtype).itemsize, 8)])


def per(dtype: str) -> int:
    """Words per element."""
    return dtypes.get(dtype).itemsize // word_dtype(dtype).itemsize


def words(t: RawTensor) -> np.ndarray:
    """The tensor's bits as a flat read-only array of unsigned words."""
    return np.frombuffer(t.data, dtype=word_dtype(t.dtype))


def per_element(t: RawTensor) -> np.ndarray:
    """Words grouped per element: shape (numel,) or (numel, words per element)."""
    w = words(t)
    per = dtypes.get(t.dtype).itemsize // w.itemsize
    return w if per == 1 else w.reshape(-1, per)


def to_tensor(w: np.ndarray, dtype: str, shape: tuple[int, ...]) -> RawTensor:
    """Wrap a flat word array as a tensor of `dtype` and `shape`."""
    return RawTensor(dtype, tuple(shape), memoryview(np.ascontiguousarray(w).reshape(-1).view(np.uint8)))


_BLOCK = 1 << 20  # elements per block: temporaries stay in cache and fresh allocations small


_scratch = threading.local()


def scratch(n: int, dtype) -> np.ndarray:
    """A per-thread reusable array of n elements (fresh large arrays cost page faults)."""
    buf = getattr(_scratch, "buf", None)
    need = n * np.dtype(dtype).itemsize
    if buf is None or buf.nbytes < need:
        buf = _scratch.buf = memory.empty(need, np.uint8)
    return buf[:need].view(dtype)


def zigzag_diff(new: np.ndarray, old: np.ndarray, reuse: bool = False) -> np.ndarray:
    """(new - old) wrapping, zigzag-coded: small differences of either sign -> small words.

    Works block by block into one output array; with `reuse` that array is this thread's scratch
    buffer (valid until the thread's next call), for a change encoded at once and dropped."""
    out = scratch(len(new), new.dtype) if reuse else memory.empty(len(new), new.dtype)
    bits = np.array(new.itemsize * 8 - 1, dtype=new.dtype)
    one = np.array(1, dtype=new.dtype)
    sign = np.empty(min(len(new), _BLOCK), dtype=new.dtype)
    for i in range(0, len(new), _BLOCK):
        d = out[i : i + _BLOCK]
        s = sign[: len(d)]
        np.subtract(new[i : i + _BLOCK], old[i : i + _BLOCK], out=d)  # unsigned: wraps modulo 2**bits
        np.right_shift(d, bits, out=s)
        np.negative(s, out=s)
        np.left_shift(d, one, out=d)
        np.bitwise_xor(d, s, out=d)
    return out


def zigzag_apply(old: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Inverse of zigzag_diff, in place: `code` (writable) becomes old + decoded difference."""
    one = np.array(1, dtype=code.dtype)
    sign = np.empty(min(len(code), _BLOCK), dtype=code.dtype)
    for i in range(0, len(code), _BLOCK):
        c = code[i : i + _BLOCK]
        s = sign[: len(c)]
        np.bitwise_and(c, one, out=s)
        np.negative(s, out=s)
        np.right_shift(c, one, out=c)
        np.bitwise_xor(c, s, out=c)
        np.add(c, old[i : i + _BLOCK], out=c)
    return code
