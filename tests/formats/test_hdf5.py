"""The HDF5 (`.weights.h5`, `tf_model.h5`) and `.keras` readers and writers, on files h5py writes."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from git_theta.errors import CheckpointError
from git_theta.formats.detect import by_name, detect
from git_theta.tensor import RawTensor, TensorSpec
from tests.helpers import rewrite

h5py = pytest.importorskip("h5py")
ml_dtypes = pytest.importorskip("ml_dtypes")


def h5_bytes(build) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def rich(f) -> None:
    """Groups, attributes, every kind of dataset git-theta splits or keeps as bytes."""
    f.attrs["keras_version"] = "3.15.1"
    f.attrs["layer_names"] = np.array([b"dense", b"head"])
    g = f.create_group("layers/dense/vars")
    g.attrs["name"] = "dense"
    g["0"] = np.arange(12, dtype=np.float32).reshape(4, 3)
    g["1"] = np.array([-0.0, np.nan, 1e-45], dtype=np.float32)
    g.create_dataset("bf", data=np.arange(4, dtype=ml_dtypes.bfloat16)).attrs["dtype"] = "bfloat16"
    f["scalars/step"] = np.int64(7)
    f["scalars/flag"] = np.array([True, False])
    f["scalars/half"] = np.ones(3, np.float16)
    f["scalars/c"] = np.ones(2, np.complex64)
    f["kept/text"] = "a string dataset"
    f["kept/big_endian"] = np.arange(3, dtype=">f4")
    f.create_dataset("kept/gzip", data=np.arange(100, dtype=np.float32), compression="gzip")
    f.create_dataset("kept/chunked", data=np.ones(10, np.float32), chunks=(5,))
    f["kept/compound"] = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    f["links/soft"] = h5py.SoftLink("/layers/dense/vars/0")
    f["links/external"] = h5py.ExternalLink("/nonexistent/elsewhere.h5", "/x")
    f["links/hard"] = f["layers/dense/vars/0"]


def test_rich_file_round_trips_byte_identical():
    raw = h5_bytes(rich)
    fmt = by_name("hdf5")
    ck, out = rewrite(fmt, raw, "model.weights.h5")
    assert out == raw
    assert set(ck.tensors) == {
        "layers/dense/vars/0",
        "layers/dense/vars/1",
        "layers/dense/vars/bf",
        "scalars/step",
        "scalars/flag",
        "scalars/half",
        "scalars/c",
    }  # strings, big-endian, compressed, chunked and compound datasets stay bytes; links are not followed
    assert ck.tensors["layers/dense/vars/bf"].dtype == "bfloat16"
    assert ck.tensors["scalars/flag"].dtype == "bool" and ck.tensors["scalars/step"].shape == ()
    np.testing.assert_array_equal(ck.tensors["layers/dense/vars/0"].numpy(), np.arange(12).reshape(4, 3))
    json.dumps(ck.layout)  # the layout is plain JSON


def test_changed_tensors_give_the_file_h5py_would_write(tmp_path):
    raw = h5_bytes(rich)
    fmt = by_name("hdf5")
    ck = fmt.read(memoryview(raw), "m.h5")
    new = dict(ck.tensors)
    new["layers/dense/vars/0"] = RawTensor.from_numpy(np.full((4, 3), 2.5, np.float32))
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in new.items()]
    out = io.BytesIO()
    fmt.write(ck.layout, specs, list(new.values()), out, "m.h5")
    with h5py.File(io.BytesIO(raw), "r+") as f:  # the same change made by h5py
        f["layers/dense/vars/0"][...] = 2.5
    with h5py.File(io.BytesIO(out.getvalue()), "r") as f:
        assert (f["layers/dense/vars/0"][...] == 2.5).all()
        assert f["kept/text"][()] == b"a string dataset" and f.attrs["keras_version"] == "3.15.1"
        assert (f["kept/gzip"][...] == np.arange(100)).all()
    wrong = [TensorSpec(n, "float64" if n.endswith("/0") else t.dtype, t.shape) for n, t in new.items()]
    assert not fmt.layout_fits(ck.layout, wrong) and fmt.layout_fits(ck.layout, specs)
    doubled = dict(new, **{"layers/dense/vars/0": RawTensor.from_numpy(np.zeros((4, 3), np.float64))})
    with pytest.raises(CheckpointError, match="cannot change"):
        fmt.write(ck.layout, specs, list(doubled.values()), io.BytesIO(), "m.h5")


def test_fresh_file_from_specs_is_valid_hdf5():
    fmt = by_name("hdf5")
    tensors = {
        "a/b/kernel": RawTensor.from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "a/step": RawTensor.from_numpy(np.int64(3)),
        "bf": RawTensor.from_numpy(np.ones(2, ml_dtypes.bfloat16)),
    }
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()]
    layout = fmt.new_layout(tensors, specs, "new.weights.h5")
    out = io.BytesIO()
    fmt.write(layout, specs, list(tensors.values()), out, "new.weights.h5")
    again = fmt.read(memoryview(out.getvalue()), "new.weights.h5")
    assert again.layout == layout and list(again.tensors) == list(tensors)
    assert all(bytes(again.tensors[n].data) == bytes(t.data) for n, t in tensors.items())
    with h5py.File(io.BytesIO(out.getvalue()), "r") as f:
        assert f["a/step"][()] == 3 and f["bf"].attrs["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"\x89HDF\r\n\x1a\n" + bytes(40), "corrupt or truncated HDF5"),
        (b"not hdf5 at all" * 8, "not an HDF5 file"),
    ],
)
def test_malformed_files_are_one_line_errors(blob, match):
    with pytest.raises(CheckpointError, match=match) as info:
        by_name("hdf5").read(memoryview(blob), "bad.h5")
    assert str(info.value).startswith("bad.h5: ") and "\n" not in str(info.value)


def keras_archive(weights: bytes, compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        z.writestr("model.weights.h5", weights, compress_type=compress)
    return buf.getvalue()


def test_keras_archive_round_trip_and_valid_zip_after_a_change():
    raw = keras_archive(h5_bytes(rich))
    fmt = detect("model.keras", raw[:64])
    assert fmt.name == "keras"
    ck, out = rewrite(fmt, raw, "model.keras")
    assert out == raw and "layers/dense/vars/0" in ck.tensors
    new = dict(ck.tensors, **{"scalars/step": RawTensor.from_numpy(np.int64(8))})
    specs = [TensorSpec(n, t.dtype, t.shape) for n, t in new.items()]
    buf = io.BytesIO()
    fmt.write(ck.layout, specs, list(new.values()), buf, "model.keras")
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        assert z.testzip() is None
        with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
            assert f["scalars/step"][()] == 8


def test_keras_archive_refusals():
    weights = h5_bytes(rich)
    with pytest.raises(CheckpointError, match="compressed"):
        by_name("keras").read(memoryview(keras_archive(weights, zipfile.ZIP_DEFLATED)), "m.keras")
    raw = bytearray(keras_archive(weights))
    raw[raw.find(b"dense") + 200] ^= 0xFF  # inside the weights member: its CRC no longer holds
    with pytest.raises(CheckpointError, match="CRC|corrupt"):
        by_name("keras").read(memoryview(bytes(raw)), "m.keras")
    with pytest.raises(CheckpointError, match="needs its model config"):
        by_name("keras").write({}, [], [], io.BytesIO(), "m.keras")


def test_save_and_load_api_with_weights_h5(repo, monkeypatch):
    import git_theta

    for key, value in repo.env.items():
        monkeypatch.setenv(key, value)
    repo("commit", "-q", "--allow-empty", "-m", "init")
    sd = {"dense/kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "dense/bias": np.zeros(3, np.float32)}
    git_theta.save(sd, "model.weights.h5", "v1", repo=repo.cwd, materialize=True)
    path = os.path.join(repo.cwd, "model.weights.h5")
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["dense/kernel"][...], sd["dense/kernel"])
    assert repo.status() == ""
    sd["dense/bias"] = np.ones(3, np.float32)
    git_theta.save(sd, "model.weights.h5", "v2", repo=repo.cwd, materialize=True)
    back = git_theta.load("model.weights.h5", repo=repo.cwd, framework="numpy")
    np.testing.assert_array_equal(back["dense/bias"], np.ones(3))
    sd["dense/kernel"] = np.ones((4, 3), np.float32)  # a new shape: the file gets a new layout
    git_theta.save(sd, "model.weights.h5", "v3", repo=repo.cwd, materialize=True)
    with h5py.File(path, "r") as f:
        assert f["dense/kernel"].shape == (4, 3)
    assert repo.status() == ""
