"""JSON checkpoints: {"name": {"dtype": "float32", "shape": [2, 3], "values": [...]}, ...}.

Values are written with Python's shortest round-tripping float repr, so float16/32/64 tensors come
back bit for bit (NaN and infinities as the strings "nan", "inf", "-inf").
"""

import json
import math
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

from git_theta.errors import CheckpointError
from git_theta.formats.base import Checkpoint, CheckpointFormat
from git_theta.tensor import RawTensor, TensorSpec

_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def _to_json(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


class JsonCheckpoint(CheckpointFormat):
    name = "json"
    aliases = ("json-checkpoint",)
    extensions = (".json",)

    def read(self, data: memoryview, path: str) -> Checkpoint:
        try:
            doc = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError):
            raise CheckpointError("not a JSON checkpoint (invalid JSON)", path) from None
        if not isinstance(doc, dict):
            raise CheckpointError("a JSON checkpoint is an object of named tensors", path)
        tensors = {}
        for name, entry in doc.items():
            try:
                dtype, shape = entry["dtype"], tuple(int(s) for s in entry["shape"])
                if dtype not in DTYPES:
                    raise ValueError(f"dtype {dtype}")
                values = [_SPECIAL.get(v, v) if isinstance(v, str) else v for v in entry["values"]]
                array = np.array(values, dtype=dtype).reshape(shape)
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"tensor {name!r} is malformed ({exc})", path) from None
            tensors[name] = RawTensor.from_numpy(array)
        return Checkpoint(tensors, {})

    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        doc = {}
        for spec, tensor in zip(specs, tensors):
            values = tensor.numpy().reshape(-1).tolist()
            doc[spec.name] = {
                "dtype": spec.dtype,
                "shape": list(spec.shape),
                "values": [_to_json(v) for v in values],
            }
        out.write(json.dumps(doc, indent=1).encode() + b"\n")
