"""Fuzzing the metadata parser and the smudge path with hypothesis: hand-edited or badly merged
metadata files give a ThetaError (one clear line), never another exception or a huge allocation."""

import copy
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_theta.errors import ThetaError
from git_theta.filter.smudge import prepare
from git_theta.metadata import Metadata, ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates.storing import store_tensor

SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("GIT_THETA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.just("../../etc/passwd"),
    st.just("x" * 5000),
    st.lists(st.integers(min_value=-(2**62), max_value=2**62), max_size=6),
    st.just([2**40, 2**40]),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A real store holding a small model, and that model's metadata document."""
    import subprocess

    top = tmp_path_factory.mktemp("fuzzrepo")
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    store = LfsStore.for_cwd(str(top))
    rng = np.random.default_rng(0)
    params = {}
    prev = None
    for name, arr in {
        "w": rng.standard_normal((8, 8)).astype(np.float32),
        "b": np.zeros(8, np.float32),
    }.items():
        params[name] = store_tensor(RawTensor.from_numpy(arr), store, name)
    changed = rng.standard_normal((8, 8)).astype(np.float32)
    prev = params["w"]
    params["w"] = store_tensor(RawTensor.from_numpy(changed), store, "w", prev, "bitdelta")
    meta = Metadata("safetensors", {"metadata": None}, params)
    return str(top), json.loads(meta.dumps())


def as_version_1(doc: dict) -> dict:
    """The same metadata as git-theta wrote it before version 2 (still read)."""
    meta = Metadata.loads(json.dumps(doc).encode())
    return {
        "git_theta": {"metadata_version": 1},
        "checkpoint": {"format": meta.format, "layout": meta.layout, "order": list(meta.params)},
        "parameters": {name: e.to_json() for name, e in meta.params.items()},
    }


def _paths(doc, prefix=()):
    """Every (path of keys/indices) into a JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, action, value):
    doc = copy.deepcopy(doc)
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if action == "delete" and isinstance(parent, dict):
        del parent[key]
    elif action == "delete" and isinstance(parent, list):
        parent.pop(key)
    else:
        parent[key] = value
    return doc


def _smudge_or_clear_error(data: bytes, top: str) -> None:
    try:
        write = prepare(data, "model.safetensors", top)
        write(io.BytesIO())
    except ThetaError as exc:
        assert "\n" not in str(exc).strip() and len(str(exc)) < 2000


@pytest.mark.parametrize("version", [2, 1])
@SETTINGS
@given(data=st.data())
def test_mutated_metadata_is_refused_cleanly(stored, version, data):
    top, doc = stored
    doc = doc if version == 2 else as_version_1(doc)
    paths = list(_paths(doc))
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["delete", "replace"]))
    mutated = _mutate(doc, path, action, data.draw(ODD))
    raw = json.dumps(mutated).encode()
    try:
        Metadata.loads(raw, "model.safetensors")
    except ThetaError:
        pass
    _smudge_or_clear_error(raw, top)


@SETTINGS
@given(st.binary(max_size=300))
def test_garbage_bytes_are_not_metadata_or_fail_cleanly(stored, blob):
    top, _ = stored
    try:
        Metadata.loads(blob, "m")
    except ThetaError:
        pass
    _smudge_or_clear_error(b"{" + blob, top)


def test_deeply_nested_metadata_is_refused(stored):
    top, doc = stored
    nested = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    with pytest.raises(ThetaError, match="nested too deeply"):
        Metadata.loads(nested, "m")
    # a chain of 100 `base` entries (past the 64 any real chain has): refused when loaded
    long = as_version_1(doc)
    entry = long["parameters"]["w"]
    for _ in range(100):
        entry = {
            "tensor_metadata": entry["tensor_metadata"],
            "lfs_metadata": entry["lfs_metadata"],
            "theta_metadata": {"update_type": "bitdelta", "codec": "", "base": entry},
        }
    long["parameters"]["w"] = entry
    with pytest.raises(ThetaError, match="w"):
        prepare(json.dumps(long).encode(), "model.safetensors", top)(io.BytesIO())


def test_huge_shape_is_refused_before_allocating(stored):
    top, doc = stored
    bad = as_version_1(doc)
    bad["parameters"]["b"]["tensor_metadata"]["shape"] = [2**40, 2**40]
    with pytest.raises(ThetaError, match="b"):
        prepare(json.dumps(bad).encode(), "model.safetensors", top)(io.BytesIO())
    bad = copy.deepcopy(doc)
    row = next(r for r in bad["parameters"] if r[0] == "b")
    row[2] = [2**40, 2**40]
    with pytest.raises(ThetaError, match="b"):
        prepare(json.dumps(bad).encode(), "model.safetensors", top)(io.BytesIO())


def test_absurd_names_and_unknown_update_types(stored):
    top, doc = stored
    for name in ("x" * 5000, "a\x00b"):
        bad = copy.deepcopy(doc)
        next(r for r in bad["parameters"] if r[0] == "b")[0] = name
        with pytest.raises(ThetaError, match="name"):
            Metadata.loads(json.dumps(bad).encode(), "m")
    doc = as_version_1(doc)
    for name in ("x" * 5000, "a\x00b"):
        bad = copy.deepcopy(doc)
        bad["parameters"][name] = bad["parameters"].pop("b")
        bad["checkpoint"]["order"] = ["w", name]
        with pytest.raises(ThetaError, match="name"):
            Metadata.loads(json.dumps(bad).encode(), "m")
    bad = copy.deepcopy(doc)
    bad["parameters"]["b"]["theta_metadata"]["update_type"] = "rm -rf"
    with pytest.raises(ThetaError, match="rm -rf"):
        prepare(json.dumps(bad).encode(), "model.safetensors", top)(io.BytesIO())


def test_entry_round_trip_is_stable():
    e = ParamEntry("float32", (2, 3), "0" * 64, "1" * 64, 10, "dense", "c", {"pack": [0, 10]})
    assert ParamEntry.from_json(json.loads(json.dumps(e.to_json())), "p") == e
