"""The tensor element types git-theta stores, by torch name, with their numpy/tensorstore form.

Tensors travel through git-theta as raw little-endian bytes plus one of these names, so no
framework is needed to move them. `storage` is the numpy dtype used to hold the bits: the type
itself where numpy (with ml_dtypes) has it, else an unsigned integer of the same width.
"""

from __future__ import annotations

from collections import namedtuple
from functools import cache

# typing.TYPE_CHECKING, and named tuples rather than dataclasses, in the modules the pre-push hook
# imports (dtypes, tensor, metadata): `typing` and `dataclasses` (which imports `inspect`) were
# 16 ms of a ~110 ms hook here, which Git LFS's Go hook does not pay.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import numpy as np


class DType(namedtuple("DType", "name itemsize storage safetensors torch_storage kind")):
    """name: torch spelling without "torch.", e.g. "float32"; storage: the numpy / tensorstore
    dtype name that holds the bits; safetensors: its header spelling (or None); torch_storage: the
    legacy typed storage class in torch pickles (or None); kind: "f" float, "i" signed,
    "u" unsigned, "b" bool, "c" complex."""

    __slots__ = ()

    def numpy(self) -> np.dtype:
        """The numpy dtype that holds this type's bits."""
        try:
            return _numpy_dtype(self.storage)
        except KeyError:
            from git_theta.errors import ThetaError

            raise ThetaError(
                f"tensor dtype {self.name} needs a newer ml_dtypes than is installed: pip install -U ml_dtypes"
            ) from None


@cache
def _numpy_dtype(name: str) -> np.dtype:
    """numpy (and ml_dtypes) imported on first use: commands that only read metadata, such as
    the pre-push hook, never need them (0.09 s of a 0.25 s hook run)."""
    import numpy as np

    try:  # ml_dtypes comes with tensorstore; it gives numpy bfloat16 and float8 types.
        import ml_dtypes
    except ImportError:  # pragma: no cover - tensorstore always brings it
        ml_dtypes = None
    if hasattr(np, name) and name not in ("bool",):
        return np.dtype(name)
    if name == "bool":
        return np.dtype(np.bool_)
    if ml_dtypes is not None and hasattr(ml_dtypes, name):
        return np.dtype(getattr(ml_dtypes, name))
    raise KeyError(name)


_TABLE = [
    # name, itemsize, storage, safetensors, torch storage, kind
    ("float64", 8, "float64", "F64", "DoubleStorage", "f"),
    ("float32", 4, "float32", "F32", "FloatStorage", "f"),
    ("float16", 2, "float16", "F16", "HalfStorage", "f"),
    ("bfloat16", 2, "bfloat16", "BF16", "BFloat16Storage", "f"),
    ("float8_e4m3fn", 1, "float8_e4m3fn", "F8_E4M3", None, "f"),
    ("float8_e5m2", 1, "float8_e5m2", "F8_E5M2", None, "f"),
    ("float8_e4m3fnuz", 1, "float8_e4m3fnuz", None, None, "f"),
    ("float8_e5m2fnuz", 1, "float8_e5m2fnuz", None, None, "f"),
    ("float8_e8m0fnu", 1, "float8_e8m0fnu", "F8_E8M0", None, "f"),
    ("int64", 8, "int64", "I64", "LongStorage", "i"),
    ("int32", 4, "int32", "I32", "IntStorage", "i"),
    ("int16", 2, "int16", "I16", "ShortStorage", "i"),
    ("int8", 1, "int8", "I8", "CharStorage", "i"),
    ("uint64", 8, "uint64", "U64", None, "u"),
    ("uint32", 4, "uint32", "U32", None, "u"),
    ("uint16", 2, "uint16", "U16", None, "u"),
    ("uint8", 1, "uint8", "U8", "ByteStorage", "u"),
    ("bool", 1, "bool", "BOOL", "BoolStorage", "b"),
    ("complex128", 16, "complex128", "C128", "ComplexDoubleStorage", "c"),
    ("complex64", 8, "complex64", "C64", "ComplexFloatStorage", "c"),
    ("complex32", 4, "uint32", None, None, "c"),  # no numpy type: kept as raw 32-bit words
]

DTYPES: dict[str, DType] = {row[0]: DType(*row) for row in _TABLE}

BY_SAFETENSORS = {d.safetensors: d for d in DTYPES.values() if d.safetensors}


def get(name: str) -> DType:
    """Look a dtype up by torch name ("float32", "torch.float32" also accepted)."""
    key = name[6:] if name.startswith("torch.") else name
    try:
        return DTYPES[key]
    except KeyError:
        raise KeyError(f"unsupported tensor dtype {name!r}") from None


def from_numpy(dtype: np.dtype) -> DType:
    """The DType for a numpy dtype (bfloat16 and float8 through ml_dtypes)."""
    import numpy as np

    name = np.dtype(dtype).name
    if name == "bool":
        return DTYPES["bool"]
    return get(name)
