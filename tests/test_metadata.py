"""The metadata file: stable bytes, strict parsing with clear errors."""

import json

import pytest

import git_theta.metadata as metadata
from git_theta.errors import ThetaError
from git_theta.metadata import Metadata, ParamEntry, is_metadata


def entry(**kw):
    base = dict(dtype="float32", shape=(2, 3), hash="ab" * 32, oid="cd" * 32, size=99, codec="c")
    base.update(kw)
    return ParamEntry(**base)


def version_1(meta: Metadata, notice: bool = True) -> bytes:
    """`meta` as git-theta wrote it before version 2 (still read)."""
    doc = {
        "git_theta": {"metadata_version": 1},
        "checkpoint": {"format": meta.format, "layout": meta.layout, "order": list(meta.params)},
        "parameters": {name: e.to_json() for name, e in meta.params.items()},
    }
    if notice:
        doc["README"] = metadata.NOTICE
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def test_dumps_is_stable_and_round_trips():
    packed = entry(extra={"pack": [10, 20]})
    meta = Metadata("pytorch", {"container": "zip"}, {"b": entry(), "a": entry(oid="ef" * 32), "c": packed})
    data = meta.dumps()
    assert data == Metadata.loads(data).dumps() and Metadata.loads(data) == meta
    # a new object or a new kind of storage changes no other row
    changed = dict(meta.params, a=entry(oid="ab" * 32, update_type="bitdelta"))
    before, after = (
        data.decode().splitlines(),
        Metadata("pytorch", {"container": "zip"}, changed).dumps().decode(),
    )
    assert [line for line in after.splitlines() if line not in before and line.startswith('  ["')] == [
        line for line in after.splitlines() if line.startswith('  ["a"')
    ]
    doc = json.loads(data)
    assert [row[0] for row in doc["parameters"]] == ["b", "a", "c"]  # file order
    assert doc["objects"] == {"cd" * 32: 99, "ef" * 32: 99}  # each object once
    assert doc["parameters"][2][4] == ["cd" * 6, 10, 20]  # a slice of a pack, named by an oid prefix
    assert is_metadata(data)
    # one line per parameter: a changed tensor is a one-line diff
    assert sum(line.startswith('  ["') for line in data.decode().splitlines()) == 3


def test_metadata_stays_small_in_proportion_to_the_tensor_count():
    """50,000 small tensors gave 26.6 MB of metadata (1.9x the checkpoint) in version 1 (issue 19)."""
    params = {
        f"blocks.{i // 10}.layer.{i % 10}.weight": entry(
            shape=(70,), hash=f"{i:064x}", oid="cd" * 32, size=26_000_000, extra={"pack": [i * 300, 290]}
        )
        for i in range(2000)
    }
    meta = Metadata("pytorch", {}, params)
    per_tensor = len(meta.dumps()) / len(params)
    assert per_tensor < 200, per_tensor  # version 1: ~500 bytes
    assert len(meta.dumps()) * 3 < len(version_1(meta))


def test_version_1_metadata_still_parses_and_is_checked():
    meta = Metadata("pytorch", {"container": "zip"}, {"b": entry(), "a": entry(oid="ef" * 32)})
    for notice in (True, False):
        old = version_1(meta, notice)
        assert is_metadata(old)
        parsed = Metadata.loads(old)
        assert parsed == meta and list(parsed.params) == ["b", "a"]
        assert Metadata.dumps_unchanged(meta, [parsed]) == old  # not rewritten until a tensor changes
    doc = json.loads(version_1(meta))
    doc["parameters"]["a"]["lfs_metadata"]["oid"] = "../../etc"
    with pytest.raises(ThetaError, match="malformed LFS oid"):
        Metadata.loads(json.dumps(doc).encode(), "model.pt")
    doc["checkpoint"]["order"] = ["a", "v"]
    with pytest.raises(ThetaError, match="does not match"):
        Metadata.loads(json.dumps(doc).encode(), "model.pt")


def test_metadata_past_the_size_limit_is_refused_not_written(monkeypatch):
    meta = Metadata("pytorch", {}, {f"w{i}": entry() for i in range(100)})
    monkeypatch.setattr(metadata, "MAX_METADATA", len(meta.dumps()) - 1)
    with pytest.raises(ThetaError, match="split the checkpoint"):
        meta.dumps()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("parameters"), "malformed"),
        (lambda d: d["parameters"][0].__setitem__(2, "x"), "malformed"),
        (lambda d: d["parameters"][0].__setitem__(1, "float128"), "unknown dtype"),
        (
            lambda d: d["objects"].update({"../../etc/passwd": d["objects"].pop("cd" * 32)}),
            "no single object",
        ),
        (lambda d: d["objects"].update({"cd" * 31 + "ab": 1}), "no single object"),
        (lambda d: d["parameters"].append(d["parameters"][0]), "twice"),
        (lambda d: d["parameters"][0].__setitem__(4, 7), "no single object"),
        (lambda d: d["parameters"][0].__setitem__(5, "sparse"), "no entry of the storage"),
        (lambda d: d["parameters"][0].append([1]), "malformed row"),
        (lambda d: d["storage"].update(dense=["dense"]), "no entry of the storage"),
        (lambda d: d["objects"].update(x="1"), "objects is not a map"),
        (lambda d: d["git_theta"].update(metadata_version=99), "not supported"),
        (lambda d: d["git_theta"].update(metadata_version=True), "not supported"),
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
    assert list(json.loads(data)) == ["README", "checkpoint", "git_theta", "objects", "storage", "parameters"]
    assert list(Metadata.loads(data).params) == ["w"]  # the notice is not a parameter


def test_metadata_without_the_notice_still_parses():
    for old in (version_1(Metadata("pytorch", {}, {"w": entry()}), notice=False), b""):
        if not old:
            doc = json.loads(Metadata("pytorch", {}, {"w": entry()}).dumps())
            del doc["README"]
            old = json.dumps(doc).encode()
        assert is_metadata(old)
        assert Metadata.loads(old).params == {"w": entry()}


def test_a_notice_that_is_not_text_is_refused():
    doc = json.loads(Metadata("pytorch", {}, {"w": entry()}).dumps())
    doc["README"] = {"w": 1}
    with pytest.raises(ThetaError, match="README is not a string"):
        Metadata.loads(json.dumps(doc).encode(), "model.pt")
