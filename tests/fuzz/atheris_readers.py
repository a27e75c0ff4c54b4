#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of the metadata parser, every checkpoint reader,
every writer and the stored-object decoders (planes and zarr blosc).

Each input is either parsed as metadata (and, when it parses, written as its format's file: the
writers take layouts from metadata anyone may commit) or handed to one format's reader (and what
it read written back, or decoded as a stored object of a few dtypes and shapes); anything but a
result or a ThetaError is a finding (atheris stops and
prints the input). Run with a bounded budget:

    python tests/fuzz/atheris_readers.py -atheris_runs=20000
"""

import io
import sys

import atheris
import numpy as np
import torch

# Only our code is instrumented: its coverage guides the fuzzer, and instrumenting all of torch (a
# CUDA build imports far more of it) took the fuzzer's memory past libFuzzer's 2 GB limit.

with atheris.instrument_imports(include=["git_theta"]):
    from git_theta import codec, planes
    from git_theta.errors import ThetaError
    from git_theta.formats.detect import by_name
    from git_theta.metadata import Metadata
    from git_theta.tensor import RawTensor, TensorSpec

FORMATS = ["metadata", "pytorch", "safetensors", "numpy", "flax"]
FORMATS += ["hdf5", "keras", "gguf", "onnx", "object"]
OBJECT_DTYPES = ["float32", "bfloat16", "float16", "uint32", "uint16", "int64"]
OBJECT_SHAPES = [(1200,), (40, 30), (0,), (), (7,)]


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
    from git_theta.metadata import ParamEntry

    for i, fmt_name in ((1, "pytorch"), (3, "numpy"), (4, "flax")):  # metadata of those files
        ck = by_name(fmt_name).read(memoryview(out[i - 1][1:]), "seed")
        params = {n: ParamEntry(t.dtype, t.shape, "0" * 64, "0" * 64, 0) for n, t in ck.tensors.items()}
        out.append(bytes([0]) + Metadata(fmt_name, ck.layout, params).dumps())
    out += _hdf5_seeds()
    out += _gguf_onnx_seeds()
    out += _object_seeds()
    return out


def _object_seeds() -> list[bytes]:
    """Stored objects of both layouts, planes ones in chunks of 512 bytes (several per object)."""
    import ml_dtypes

    casts = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
    out = []
    rng = np.random.default_rng(0)
    saved, planes.CHUNK_BYTES = planes.CHUNK_BYTES, 512
    try:
        for d, dtype in enumerate(OBJECT_DTYPES):
            for s, shape in enumerate(OBJECT_SHAPES[:2]):
                values = (rng.standard_normal(shape) * 0.02).astype(np.float32)
                if dtype in casts:
                    tensor = RawTensor.from_numpy(values.astype(casts[dtype]), dtype)
                else:
                    tensor = RawTensor.from_numpy((values.view(np.uint32) >> 20).astype(dtype))
                for compressor in (None, codec.BLOSC):
                    sink = io.BytesIO()
                    codec.encode(tensor, sink, compressor)
                    out.append(bytes([FORMATS.index("object"), d, s]) + sink.getvalue())
    finally:
        planes.CHUNK_BYTES = saved
    return out


def _gguf_onnx_seeds() -> list[bytes]:
    """A GGUF with plain and quantized tensors and an ONNX model with inline initializers, written
    by the real libraries (when installed: both are extras)."""
    import os
    import sys
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            from tests import ggufs

            ggufs.write(os.path.join(tmp, "m.gguf"), ggufs.small_llm(0))
            with open(os.path.join(tmp, "m.gguf"), "rb") as f:
                out.append(bytes([FORMATS.index("gguf")]) + f.read())
        except ImportError:  # pragma: no cover - gguf is an extra
            pass
        try:
            from tests import onnxs

            onnxs.save(os.path.join(tmp, "m.onnx"), onnxs.weights(0))
            with open(os.path.join(tmp, "m.onnx"), "rb") as f:
                out.append(bytes([FORMATS.index("onnx")]) + f.read())
        except ImportError:  # pragma: no cover - onnx is an extra
            pass
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


def write(fmt, layout, specs, tensors) -> None:
    """A writer given a layout: refused with a ThetaError, or written."""
    fmt.check_layout(layout, specs, "fuzz")
    fmt.write(layout, specs, tensors, io.BytesIO(), "fuzz")


def one_input(data: bytes) -> None:
    if not data:
        return
    kind, body = FORMATS[data[0] % len(FORMATS)], data[1:]
    try:
        if kind == "object":
            if len(body) < 2:
                return
            dtype = OBJECT_DTYPES[body[0] % len(OBJECT_DTYPES)]
            shape = OBJECT_SHAPES[body[1] % len(OBJECT_SHAPES)]
            codec.decode(body[2:], dtype, shape, what="fuzz")
        elif kind == "metadata":
            meta = Metadata.loads(body, "fuzz")
            specs = [TensorSpec(n, e.dtype, tuple(e.shape)) for n, e in meta.params.items()]
            if sum(e.nbytes for e in meta.params.values()) <= 1 << 20:
                zeros = [
                    RawTensor(s.dtype, s.shape, memoryview(bytes(e.nbytes)))
                    for s, e in zip(specs, meta.params.values())
                ]
                write(by_name(meta.format), meta.layout, specs, zeros)
        else:
            fmt = by_name(kind)
            ck = fmt.read(memoryview(body), "fuzz")
            specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in ck.tensors.items()]
            write(fmt, ck.layout, specs, list(ck.tensors.values()))
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
