"""The torch reader/writer: structure, dtypes, views and refusals, without torch on the hot path."""

import io
import os
import pickle
import zipfile

import pytest
import torch

from git_theta.errors import CheckpointError
from git_theta.formats.pytorch import PyTorchCheckpoint
from git_theta.tensor import TensorSpec
from tests.helpers import assert_same_state, every_dtype, small_model


def round_trip(obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    fmt = PyTorchCheckpoint()
    ck = fmt.read(memoryview(buf.getvalue()), "x.pt")
    out = io.BytesIO()
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    fmt.write(ck.layout, specs, list(ck.tensors.values()), out, "x.pt")
    again = fmt.read(memoryview(out.getvalue()), "x.pt")
    assert again.layout == ck.layout
    return ck, torch.load(io.BytesIO(out.getvalue()), weights_only=True)


def test_state_dict_round_trip_and_names():
    sd = small_model()
    ck, back = round_trip(sd)
    assert list(ck.tensors) == list(sd)
    assert ck.layout["tree"] == {"odict_of_tensors": list(sd)}
    assert_same_state(back, sd)


@pytest.mark.parametrize("legacy", [False, True])
def test_nested_structure(legacy):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    obj = {
        "model": model.state_dict(),
        "optim": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.5, "params": [0, 1]}]},
        "epoch": 7,
        "loss": float("nan"),
        "tag": b"\x00\xff",
        "shape": torch.Size([2, 3]),
        "flags": (True, None, "x"),
        "p": torch.nn.Parameter(torch.ones(2)),
        "g": torch.ones(2, requires_grad=True),
    }
    ck, back = round_trip(obj, legacy)
    assert "model/0.weight" in ck.tensors and "optim/state/0/step" in ck.tensors
    assert back["model"]._metadata == obj["model"]._metadata
    assert back["p"].requires_grad and isinstance(back["p"], torch.nn.Parameter)
    assert back["g"].requires_grad
    assert back["tag"] == b"\x00\xff" and back["shape"] == torch.Size([2, 3])
    assert back["loss"] != back["loss"]  # NaN survives
    back.pop("loss"), obj.pop("loss")
    assert_same_state(back, obj)


def test_every_dtype_bit_exact():
    sd = every_dtype()
    _, back = round_trip(sd)
    assert_same_state(back, sd)


def test_views_scalars_empty_and_shared_storage():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "t": base.t(),  # non-contiguous
        "slice": base[1:3, 2:],  # offset into a bigger storage
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
        "a": base,
        "tied": base,  # same storage twice
    }
    ck, back = round_trip(obj)
    assert ck.tensors["t"].shape == (6, 4)
    for k in obj:
        assert torch.equal(back[k], obj[k]), k


def test_legacy_file_stays_legacy():
    buf = io.BytesIO()
    torch.save(small_model(), buf, _use_new_zipfile_serialization=False)
    ck = PyTorchCheckpoint().read(memoryview(buf.getvalue()), "x.pt")
    assert ck.layout["container"] == "legacy"


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("legacy", [False, True])
def test_code_execution_is_refused(legacy):
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1), "x": Exploit()}, buf, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError, match=r"refusing to load.*posix.system"):
        PyTorchCheckpoint().read(memoryview(buf.getvalue()), "evil.pt")


def test_plain_pickle_with_reduce_is_refused():
    data = pickle.dumps(Exploit(), protocol=2)
    with pytest.raises(CheckpointError):
        PyTorchCheckpoint().read(memoryview(data), "evil.pt")


@pytest.mark.parametrize("cut", [10, 200, 0.5, -30])
def test_truncated_zip_is_a_clear_error(cut):
    buf = io.BytesIO()
    torch.save(small_model(), buf)
    data = buf.getvalue()
    n = int(len(data) * cut) if isinstance(cut, float) else cut
    with pytest.raises(CheckpointError, match="x.pt: "):
        PyTorchCheckpoint().read(memoryview(data[:n]), "x.pt")


def test_zip64_archives_are_read():
    buf = io.BytesIO()
    torch.save(small_model(), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            with dst.open(info.filename, "w", force_zip64=True) as f:
                f.write(src.read(info.filename))
    ck = PyTorchCheckpoint().read(memoryview(out.getvalue()), "x.pt")
    assert list(ck.tensors) == list(small_model())


def test_writes_from_a_foreign_layout_as_flat_state_dict():
    fmt = PyTorchCheckpoint()
    sd = small_model()
    ck = fmt.read(memoryview(_save(sd)), "x.pt")
    out = io.BytesIO()
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    fmt.write({}, specs, list(ck.tensors.values()), out, "x.pt")
    assert_same_state(dict(torch.load(io.BytesIO(out.getvalue()), weights_only=True)), dict(sd))


def _save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize("nested", [False, True])
def test_tensor_offsets_are_where_the_writer_puts_each_tensor(nested):
    """A checkout decodes each tensor at its offset within a page and writes it from there; the
    offsets must be exactly where the zip writer puts the data."""
    obj = {"model": small_model(width=40), "step": 3} if nested else small_model(width=40)
    buf = io.BytesIO()
    torch.save(obj, buf)
    fmt = PyTorchCheckpoint()
    ck = fmt.read(memoryview(buf.getvalue()), "x.pt")
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    out = io.BytesIO()
    fmt.write(ck.layout, specs, list(ck.tensors.values()), out, "x.pt")
    written = out.getvalue()
    offsets = fmt.tensor_offsets(ck.layout, specs, "x.pt")
    assert len(offsets) == len(specs) and offsets == sorted(offsets)
    for at, tensor in zip(offsets, ck.tensors.values()):
        data = bytes(tensor.data)
        assert written[at : at + len(data)] == data and at % 64 == 0


def test_a_legacy_file_has_no_offsets():
    buf = io.BytesIO()
    torch.save(small_model(), buf, _use_new_zipfile_serialization=False)
    ck = PyTorchCheckpoint().read(memoryview(buf.getvalue()), "x.pt")
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    assert PyTorchCheckpoint().tensor_offsets(ck.layout, specs, "x.pt") is None
