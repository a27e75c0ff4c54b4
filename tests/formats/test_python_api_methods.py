"""What the Python API asks of a format (new_layout, dumps, loads), on the built-in formats: a
state dict goes to file bytes and back, and formats that cannot make new files say so."""

import numpy as np
import pytest

from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name, detect
from git_theta.tensor import RawTensor, TensorSpec

# in sorted order: flax.serialization sorts keys, and a new file must hold the tensors in their order
STATE = {"b": np.array([1, -2], np.int64), "w": np.arange(6, dtype=np.float32).reshape(2, 3)}


@pytest.mark.parametrize("name, path", [("numpy", "m.npz"), ("flax", "m.msgpack"), ("hdf5", "m.h5")])
def test_state_dict_to_bytes_and_back(name, path):
    fmt = by_name(name)
    data = fmt.dumps(STATE, lambda: {n: RawTensor.from_numpy(v) for n, v in STATE.items()}, path)
    assert detect(path, data[:64]).name == name
    back = fmt.loads(data, path)
    assert sorted(back) == sorted(STATE)
    assert all(np.asarray(back[n]).dtype == v.dtype and np.array_equal(back[n], v) for n, v in STATE.items())


def test_torch_state_dict_keeps_what_torch_save_keeps():
    torch = pytest.importorskip("torch")
    state = {"w": torch.ones(2, 3), "epoch": 5}  # torch.save keeps non-tensor values too
    fmt = by_name("pytorch")
    back = fmt.loads(fmt.dumps(state, lambda: {}, "m.pt"), "m.pt")
    assert back["epoch"] == 5 and torch.equal(back["w"], state["w"])


def test_nested_layout_names_every_tensor_once():
    specs = [TensorSpec("b", "int64", (2,)), TensorSpec("enc/w", "float32", (2, 3))]
    layout = by_name("flax").new_layout({"b": None, "enc": {"w": None}}, specs, "m.msgpack")
    assert "enc" in str(layout) and "b" in str(layout)
    with pytest.raises(ThetaError, match="cannot hold this state dict's structure"):  # flax sorts keys
        by_name("flax").new_layout({"enc": {"w": None}, "b": None}, specs[::-1], "m.msgpack")


@pytest.mark.parametrize("name", ["gguf", "onnx", "keras", "tensorflow"])
def test_formats_that_cannot_make_new_files_say_so(name):
    with pytest.raises(ThetaError, match=f"cannot save straight to a {name} checkpoint"):
        by_name(name).new_layout({"w": None}, [TensorSpec("w", "float32", (2,))], "m")
