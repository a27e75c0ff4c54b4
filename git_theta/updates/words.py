"""Tensors as unsigned machine words: exact comparisons and differences of bit patterns."""

import numpy as np

from git_theta import dtypes
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


def zigzag_diff(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """(new - old) wrapping, zigzag-coded: small differences of either sign -> small words."""
    d = np.subtract(new, old)  # unsigned: wraps modulo 2**bits
    bits = d.itemsize * 8
    sign = d >> np.array(bits - 1, dtype=d.dtype)
    d <<= np.array(1, dtype=d.dtype)
    d ^= np.negative(sign)
    return d


def zigzag_apply(old: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Inverse of zigzag_diff: old + decoded difference (a new array)."""
    one = np.array(1, dtype=code.dtype)
    d = code >> one
    d ^= np.negative(code & one)
    d += old
    return d
