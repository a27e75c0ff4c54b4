"""Sparse updates: the positions and new values of the elements whose bits changed (exact)."""

import numpy as np

from git_theta import dtypes
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates.delta import DeltaUpdate

_WORD = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _words(t: RawTensor) -> np.ndarray:
    """The tensor's elements as unsigned integers of the same width (bit patterns)."""
    item = dtypes.get(t.dtype).itemsize
    if item in _WORD:
        return np.frombuffer(t.data, dtype=_WORD[item])
    return np.frombuffer(t.data, dtype=np.uint64).reshape(-1, item // 8)  # complex128: two words


class SparseUpdate(DeltaUpdate):
    """New value = previous value with the changed elements replaced, bit for bit."""

    name = "sparse"

    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        a, b = _words(old), _words(new)
        changed = a != b if a.ndim == 1 else np.any(a != b, axis=1)
        idx = np.flatnonzero(changed).astype(np.int64)
        values = b[idx]
        return {
            "indices": RawTensor.from_numpy(idx),
            "values": RawTensor.from_numpy(
                np.ascontiguousarray(values), None if values.ndim == 1 else "uint64"
            ),
        }

    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry) -> RawTensor:
        words = _words(old).copy()
        idx = parts["indices"].numpy().astype(np.int64)
        values = parts["values"].numpy().reshape((len(idx),) + words.shape[1:])
        if len(idx) and (idx.min() < 0 or idx.max() >= len(words)):
            from git_theta.errors import ThetaError

            raise ThetaError(
                f"sparse update indices out of range for a parameter of shape {list(entry.shape)}"
            )
        words[idx] = values.view(words.dtype) if values.dtype != words.dtype else values
        return RawTensor(old.dtype, tuple(entry.shape), memoryview(words.reshape(-1).view(np.uint8)))
