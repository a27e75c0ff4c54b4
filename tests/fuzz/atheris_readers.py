#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the metadata parser and every checkpoint reader.

Each input is either parsed as metadata or handed to one format's reader; anything but a result
or a ThetaError is a finding (atheris stops and prints the input). Run with a bounded budget:

    python tests/fuzz/atheris_readers.py -atheris_runs=20000
"""

import io
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np
    import torch

    from git_theta.errors import ThetaError
    from git_theta.formats.detect import by_name
    from git_theta.metadata import Metadata

FORMATS = ["metadata", "pytorch", "safetensors", "numpy", "flax"]
FORMATS += ["hdf5", "keras"]


def seeds() -> list[bytes]:
    """Valid files of each kind, so mutations start from real structure."""
    from flax import serialization
    from safetensors.torch import save

    sd = {"w": torch.ones(3, 2), "b": torch.zeros(2, dtype=torch.bfloat16)}
    out = []
    buf = io.BytesIO()
    torch.save(sd, buf)
    out.append(bytes([1]) + buf.getvalue())
    out.append(bytes([2]) + save(sd))
    buf = io.BytesIO()
    np.savez(buf, w=np.ones((3, 2), np.float32))
    out.append(bytes([3]) + buf.getvalue())
    out.append(bytes([4]) + serialization.msgpack_serialize({"w": np.ones(3, np.float32)}))
    out += _hdf5_seeds()
    return out


def _hdf5_seeds() -> list[bytes]:
    """A small .weights.h5 and a .keras archive holding it (when h5py is installed)."""
    import zipfile

    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is an extra
        return []
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        f["layers/dense/vars/0"] = np.ones((3, 2), np.float32)
        f["optimizer/vars/0"] = np.int64(1)
    h5 = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("model.weights.h5", h5)
    return [bytes([FORMATS.index("hdf5")]) + h5, bytes([FORMATS.index("keras")]) + buf.getvalue()]


def one_input(data: bytes) -> None:
    if not data:
        return
    kind, body = FORMATS[data[0] % len(FORMATS)], data[1:]
    try:
        if kind == "metadata":
            Metadata.loads(body, "fuzz")
        else:
            dict(by_name(kind).read(memoryview(body), "fuzz").tensors)
    except ThetaError:
        pass


def main() -> None:
    import os
    import tempfile

    corpus = tempfile.mkdtemp(prefix="theta-fuzz-")
    for i, seed in enumerate(seeds()):
        with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
            f.write(seed)
    atheris.Setup([sys.argv[0], *sys.argv[1:], corpus], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
