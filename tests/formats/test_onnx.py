"""ONNX reader and writer: inline initializers and external-data files, byte-identical."""

import io
import os

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats.detect import by_name, detect
from git_theta.tensor import RawTensor, TensorSpec
from tests import onnxs


def read(path: str):
    data = open(path, "rb").read()
    fmt = detect(path, data[:64])
    return fmt, data, fmt.read(memoryview(data), path)


def write(fmt, ck, tensors: dict, path: str) -> bytes:
    out = io.BytesIO()
    fmt.write(
        ck.layout, [TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()], tensors.values(), out, path
    )
    return out.getvalue()


def test_inline_model_byte_identical(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnxs.save(path, onnxs.weights())
    fmt, data, ck = read(path)
    assert fmt.name == "onnx" and ck.layout["kind"] == "model"
    assert {n: (t.dtype, t.shape) for n, t in ck.tensors.items()} == {
        "w1": ("float32", (16, 32)),
        "b1": ("float32", (32,)),  # packed float_data
        "w2": ("float16", (32, 4)),
        "scale": ("float64", (4,)),  # packed double_data
    }  # the int64 `shape` (varints) stays in the graph
    assert write(fmt, ck, ck.tensors, path) == data


def test_external_data_file_is_split_by_the_model_beside_it(tmp_path):
    path = str(tmp_path / "e.onnx")
    onnxs.save(path, onnxs.weights(), external=True)
    fmt, data, ck = read(path + ".data")
    assert ck.layout["kind"] == "external" and ck.layout["model"] == "e.onnx"
    assert list(ck.tensors) == ["w1", "w2"]
    assert write(fmt, ck, ck.tensors, path + ".data") == data
    new = dict(ck.tensors, w1=RawTensor.from_numpy(np.ones((16, 32), np.float32)))
    with open(path + ".data", "wb") as f:
        f.write(write(fmt, ck, new, path + ".data"))
    got = onnxs.initializers(path)  # onnx.checker passes
    assert np.array_equal(got["w1"], np.ones((16, 32), np.float32))
    assert np.array_equal(got["w2"], onnxs.weights()["w2"])


def test_changed_shape_or_dtype_is_refused(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnxs.save(path, onnxs.weights())
    fmt, data, ck = read(path)
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in ck.tensors.items()]
    specs[0] = TensorSpec("w1", "float32", (32, 16))
    with pytest.raises(
        CheckpointError, match=r"'w1' is float32\[16, 32\] in the ONNX graph, not float32\[32, 16\]"
    ):
        fmt.check_specs(ck.layout, specs, path)


def test_data_file_without_its_model_and_malformed_models(tmp_path):
    path = str(tmp_path / "e.onnx")
    onnxs.save(path, onnxs.weights(), external=True)
    os.remove(path)
    with pytest.raises(CheckpointError) as exc:
        by_name("onnx").read(memoryview(open(path + ".data", "rb").read()), path + ".data")
    assert "\n" not in str(exc.value) and "e.onnx.data" in str(exc.value) and "beside it" in str(exc.value)
    onnxs.save(path, onnxs.weights())
    data = open(path, "rb").read()
    with pytest.raises(CheckpointError, match="corrupt or truncated onnx"):
        by_name("onnx").read(memoryview(data[: len(data) // 2]), path)
