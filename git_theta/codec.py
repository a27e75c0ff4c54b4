"""Tensor <-> stored bytes: a tensorstore zarr array in an in-memory kvstore, packed with msgpack.

Measured here on N(0, 0.02) weights: blosc-zstd level 3 with bit-shuffle stores fp32 at 0.877 of
raw size (byte-shuffle 0.895), bf16 at 0.754, and in ~8 MB chunks encodes at ~0.8 GB/s and decodes at
~1.4 GB/s per tensor (tensorstore spreads chunks over cores); one whole-tensor chunk encodes at
~130 MB/s, hence the chunking.
"""

import msgpack
import numpy as np
import tensorstore as ts

from git_theta import dtypes
from git_theta.errors import ThetaError
from git_theta.tensor import RawTensor, numel

NAME = "zarr-blosc-zstd3-bitshuffle"
CHUNK_BYTES = 8 << 20
_COMPRESSOR = {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2}


def chunk_shape(shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES) -> list[int]:
    """Chunks of about `target` bytes: trailing dimensions whole, the next one split."""
    chunks = [max(1, s) for s in shape]
    budget = max(1, target // itemsize)
    acc = 1
    for i in range(len(shape) - 1, -1, -1):
        size = max(1, shape[i])
        if acc * size <= budget:
            acc *= size
            continue
        chunks[i] = max(1, budget // acc)
        for j in range(i):
            chunks[j] = 1
        break
    return chunks


def _bin_header(n: int) -> bytes:
    """msgpack's bin header, so chunk bytes are written straight through without a copy."""
    if n < 256:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 65536:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


def _spec(dtype: dtypes.DType, shape, chunks) -> dict:
    return {
        "driver": "zarr",
        "kvstore": {"driver": "memory"},
        "metadata": {
            "shape": list(shape),
            "chunks": chunks,
            "compressor": _COMPRESSOR,
            "order": "C",
        },
        "dtype": dtype.storage,
        "store_data_equal_to_fill_value": True,
    }


def encode(tensor: RawTensor, sink) -> None:
    """Write `tensor`'s stored form to `sink` (anything with .write), chunk by chunk."""
    dt = dtypes.get(tensor.dtype)
    array = np.frombuffer(tensor.data, dtype=dt.numpy()).reshape(tensor.shape)
    ctx = ts.Context()
    store = ts.open(_spec(dt, tensor.shape, chunk_shape(tensor.shape, dt.itemsize)), create=True, context=ctx).result()
    if array.size:
        store.write(array).result()
    kv = ts.KvStore.open({"driver": "memory"}, context=ctx).result()
    keys = sorted(kv.list().result())
    packer = msgpack.Packer()
    sink.write(packer.pack_map_header(len(keys)))
    for key in keys:
        value = kv.read(key).result().value
        sink.write(packer.pack(key.decode("utf-8")))
        sink.write(_bin_header(len(value)))
        sink.write(value)


def decode(blob: bytes, dtype: str, shape: tuple[int, ...], what: str = "tensor") -> RawTensor:
    """Rebuild a tensor from its stored form; a clear error when the blob is not one."""
    dt = dtypes.get(dtype)
    try:
        entries = msgpack.unpackb(blob, raw=False)
        if not isinstance(entries, dict) or not all(isinstance(v, bytes) for v in entries.values()):
            raise ValueError("not a map of chunks")
        ctx = ts.Context()
        kv = ts.KvStore.open({"driver": "memory"}, context=ctx).result()
        for key, value in entries.items():
            kv.write(key, value).result()
        del entries
        store = ts.open({"driver": "zarr", "kvstore": {"driver": "memory"}}, open=True, context=ctx).result()
        if tuple(store.shape) != tuple(shape) or store.dtype.name != np.dtype(dt.numpy()).name and store.dtype.name != dt.storage:
            raise ValueError(f"stored {store.dtype.name}{list(store.shape)}, metadata says {dt.name}{list(shape)}")
        array = store.read().result() if numel(shape) else np.zeros(shape, dtype=dt.numpy())
    except ThetaError:
        raise
    except Exception as exc:
        raise ThetaError(f"stored data of {what} is corrupt ({exc})") from None
    return RawTensor(dt.name, tuple(shape), memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
