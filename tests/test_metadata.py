"""The metadata file: stable bytes, strict parsing with clear errors."""

import json

import pytest

from git_theta.errors import ThetaError
from git_theta.metadata import Metadata, ParamEntry, is_metadata


def entry(**kw):
    base = dict(dtype="float32", shape=(2, 3), hash="ab" * 32, oid="cd" * 32, size=99, codec="c")
    base.update(kw)
    return ParamEntry(**base)


def test_dumps_is_stable_sorted_and_round_trips():
    meta = Metadata("pytorch", {"container": "zip"}, {"b": entry(), "a": entry(oid="ef" * 32)})
    data = meta.dumps()
    assert data == Metadata.loads(data).dumps()
    doc = json.loads(data)
    assert doc["checkpoint"]["order"] == ["b", "a"]  # file order kept though keys are sorted
    assert list(doc["parameters"]) == ["a", "b"]
    assert doc["parameters"]["a"]["lfs_metadata"]["oid"] == "ef" * 32
    assert is_metadata(data)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("parameters"), "malformed"),
        (lambda d: d["parameters"]["w"]["tensor_metadata"].update(shape="x"), "malformed"),
        (lambda d: d["parameters"]["w"]["tensor_metadata"].update(dtype="float128"), "unknown dtype"),
        (lambda d: d["parameters"]["w"]["lfs_metadata"].update(oid="../../etc"), "malformed LFS oid"),
        (lambda d: d["checkpoint"].update(order=["w", "v"]), "does not match"),
        (lambda d: d["git_theta"].update(metadata_version=99), "not supported"),
    ],
)
def test_bad_metadata_is_a_clear_error(edit, message):
    doc = json.loads(Metadata("pytorch", {}, {"w": entry()}).dumps())
    edit(doc)
    with pytest.raises(ThetaError, match=message):
        Metadata.loads(json.dumps(doc).encode(), "model.pt")


def test_is_metadata_rejects_other_content():
    assert not is_metadata(b"")
    assert not is_metadata(b"PK\x03\x04")
    assert not is_metadata(b'{"a": 1}')
    assert not is_metadata(b"{not json")


def test_first_bytes_say_what_it_is_and_the_fix():
    data = Metadata("safetensors", {}, {"w": entry()}).dumps()
    head = data[:200].decode()
    assert head.startswith('{\n "README": "This is git-theta metadata, not the checkpoint')
    assert "`git theta install`" in head and "`git theta checkout-models`" in head
    assert list(json.loads(data)) == ["README", "checkpoint", "git_theta", "parameters"]
    assert list(Metadata.loads(data).params) == ["w"]  # the notice is not a parameter


def test_metadata_without_the_notice_still_parses():
    doc = json.loads(Metadata("pytorch", {}, {"w": entry()}).dumps())
    del doc["README"]
    old = json.dumps(doc, indent=1, sort_keys=True).encode()
    assert is_metadata(old)
    assert Metadata.loads(old).params == {"w": entry()}


def test_a_notice_that_is_not_text_is_refused():
    doc = json.loads(Metadata("pytorch", {}, {"w": entry()}).dumps())
    doc["README"] = {"w": 1}
    with pytest.raises(ThetaError, match="README is not a string"):
        Metadata.loads(json.dumps(doc).encode(), "model.pt")
