"""safetensors by its spec: byte-identical round trips, header kept, bad files refused."""

import struct

import pytest
import torch
from safetensors.torch import load, save

from git_theta.errors import CheckpointError
from git_theta.formats.detect import detect
from git_theta.formats.safetensors import SafetensorsCheckpoint
from tests.helpers import rewrite, small_model


def test_byte_identical_with_metadata():
    sd = dict(small_model())
    sd["half"] = torch.ones(3, dtype=torch.bfloat16)
    sd["f8"] = torch.ones(2, dtype=torch.float8_e4m3fn)
    for meta in (None, {"format": "pt", "z": "1", "a": "2"}):
        data = save(sd, metadata=meta)
        assert rewrite(SafetensorsCheckpoint(), data, "m.safetensors")[1] == data


def test_detected_by_magic_bytes_whatever_the_name():
    data = save({"a": torch.ones(2)})
    assert detect("weights.bin", data[:64]).name == "safetensors"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:5],
        lambda d: d[:-3],
        lambda d: struct.pack("<Q", 10**12) + d[8:],
        lambda d: d[:8] + b"[" + d[9:],
    ],
)
def test_corrupt_files_are_refused(mutate):
    data = save({"a": torch.ones(4)})
    with pytest.raises(CheckpointError, match="m.safetensors: "):
        SafetensorsCheckpoint().read(memoryview(mutate(data)), "m.safetensors")


def test_loaded_by_the_library():
    sd = {"w": torch.randn(3, 4), "b": torch.zeros(4)}
    back = load(rewrite(SafetensorsCheckpoint(), save(sd), "m.safetensors")[1])
    assert all(torch.equal(back[k], sd[k]) for k in sd)


@pytest.mark.parametrize("meta", [None, {"format": "pt", "note": "x" * 1000}])
def test_tensor_offsets_are_where_the_writer_puts_each_tensor(meta):
    """A checkout decodes each tensor at its offset within a page and writes it from there; the
    offsets must be exactly where the writer puts the data."""
    from git_theta.tensor import TensorSpec

    sd = dict(small_model(width=40))
    sd["half"] = torch.ones(3, dtype=torch.bfloat16)
    fmt = SafetensorsCheckpoint()
    ck, written = rewrite(fmt, save(sd, metadata=meta), "m.safetensors")
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    offsets = fmt.tensor_offsets(ck.layout, specs, "m.safetensors")
    assert len(offsets) == len(specs)
    for at, tensor in zip(offsets, ck.tensors.values()):
        data = bytes(tensor.data)
        assert written[at : at + len(data)] == data
