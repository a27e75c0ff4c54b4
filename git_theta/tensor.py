"""A framework-free tensor: dtype name, shape and C-contiguous little-endian bytes."""

from __future__ import annotations

from collections import namedtuple

from git_theta import dtypes
from git_theta.records import Record

TYPE_CHECKING = False  # no dataclasses or typing here: see git_theta.dtypes
if TYPE_CHECKING:
    import numpy as np


class RawTensor(Record):
    """One parameter as git-theta moves it: no torch, no copies unless needed."""

    _COMPARED = ("dtype", "shape", "data")
    __slots__ = _COMPARED

    def __init__(self, dtype: str, shape: tuple[int, ...], data: memoryview) -> None:
        self.dtype = dtype
        self.shape = shape
        self.data = data  # C-contiguous bytes, exactly nbytes long

    @property
    def nbytes(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """A read-only numpy view of the bits (ml_dtypes types for bfloat16 / float8)."""
        import numpy as np  # on first use: metadata-only commands (the pre-push hook) never import it

        dt = dtypes.get(self.dtype)
        arr = np.frombuffer(self.data, dtype=dt.numpy())
        return arr.reshape(self.shape) if self.shape else arr.reshape(())

    @classmethod
    def from_numpy(cls, array: np.ndarray, dtype: str | None = None) -> RawTensor:
        """Wrap a numpy array (copied only when not C-contiguous)."""
        import numpy as np

        array = np.asarray(array)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        name = dtype or dtypes.from_numpy(array.dtype).name
        return cls(name, tuple(int(s) for s in array.shape), memoryview(array.reshape(-1).view(np.uint8)))


class TensorSpec(namedtuple("TensorSpec", "name dtype shape")):
    """What a writer must know of a tensor before its bytes arrive (name, dtype, shape)."""

    __slots__ = ()


def numel(shape: tuple[int, ...] | list[int]) -> int:
    """Number of elements of a shape (1 for a scalar)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n
