"""ONNX test models built with onnx.helper and saved by onnx.save (inline or with external data)."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def weights(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w1": rng.standard_normal((16, 32)).astype(np.float32),
        "b1": rng.standard_normal(32).astype(np.float32),
        "w2": rng.standard_normal((32, 4)).astype(np.float16),
        "scale": np.array([0.5, 2.0, 1.0, -1.0], np.float64),
    }


def model(w: dict) -> "onnx.ModelProto":
    """X -> MatMul w1 -> Add b1 -> Relu -> Cast f16 -> MatMul w2 -> Cast f64 -> Mul scale -> Reshape."""
    inits = [
        numpy_helper.from_array(w["w1"], "w1"),  # raw_data
        helper.make_tensor("b1", TensorProto.FLOAT, [32], w["b1"].tolist()),  # packed float_data
        numpy_helper.from_array(w["w2"], "w2"),
        helper.make_tensor("scale", TensorProto.DOUBLE, [4], w["scale"].tolist()),  # packed double_data
        helper.make_tensor("shape", TensorProto.INT64, [2], [2, 2]),  # int64_data: stays in the graph
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Cast", ["h2"], ["h3"], to=TensorProto.FLOAT16),
        helper.make_node("MatMul", ["h3", "w2"], ["y16"]),
        helper.make_node("Cast", ["y16"], ["y64"], to=TensorProto.DOUBLE),
        helper.make_node("Mul", ["y64", "scale"], ["y"]),
        helper.make_node("Reshape", ["y", "shape"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [2, 2])],
        inits,
    )
    return helper.make_model(
        graph, producer_name="git-theta-tests", opset_imports=[helper.make_opsetid("", 17)]
    )


def save(path: str, w: dict, external: bool = False) -> None:
    m = model(w)
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")  # onnx appends to an existing data file
    if external:
        onnx.save(
            m, path, save_as_external_data=True, location=path.rsplit("/", 1)[-1] + ".data", size_threshold=0
        )
    else:
        onnx.save(m, path)


def initializers(path: str) -> dict:
    """name -> numpy array of every initializer, external data loaded; the model is checked first."""
    onnx.checker.check_model(path)
    m = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
