"""End to end: hostile commits and files (issue 19) are refused in one line, never obeyed.

Each test crafts what an attacker would commit or send with plain git plumbing (tests.hostile)
and drives real git and git-lfs in a temporary repository.
"""

import json
import os
import subprocess
import sys

import torch

from tests.helpers import commit_tracked_model, small_model
from tests.hostile import checkout_again, commit_metadata, metadata_at, one_line_error

# GLOBAL torch\n<S>\n with S holding a newline: POP the dtype, call os.system, leave builtins.str
_INJECTED = "float32\n0cos\nsystem\n(Vtouch {marker}\ntR0cbuiltins\nstr"


def test_layout_dtype_cannot_inject_pickle_opcodes(repo, tmp_path):
    commit_tracked_model(repo, small_model())
    marker = tmp_path / "pwned"
    doc = metadata_at(repo)
    tree = doc["checkpoint"]["layout"]["tree"]
    names = tree.pop("odict_of_tensors")
    tree["odict"] = [[n, {"tensor": n}] for n in names] + [["x", {"dtype": _INJECTED.format(marker=marker)}]]
    commit_metadata(repo, doc)
    proc = checkout_again(repo)
    path = os.path.join(repo.cwd, "model.pt")
    if os.path.exists(path) and open(path, "rb").read(2) == b"PK":
        # whatever was written must not run code even when loaded with weights_only=False
        code = f"import torch; torch.load({path!r}, weights_only=False)"
        subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert not marker.exists()
    err = one_line_error(proc)
    assert "model.pt: the checkpoint layout in its metadata is malformed" in err
    assert "not a torch dtype" in err


def test_layout_fields_reaching_writers_are_checked(repo):
    commit_tracked_model(repo, small_model())
    good = metadata_at(repo)
    for mutate in (
        lambda lay: lay.update(archive="../../evil"),
        lambda lay: lay.update(archive="a\nb"),
        lambda lay: lay.update(container="other"),
        lambda lay: lay["tree"].update(attrs=[1]),
        lambda lay: lay.update(tree={"odict": [["a", {"tensor": "nope"}]]}),
        lambda lay: lay.update(tree={"list": [{"device": "cpu\n"}]}),
        lambda lay: lay.update(tree={"list": [{"float": "zz"}]}),
        lambda lay: lay.update(tree=_deep(300)),
    ):
        doc = {**good, "checkpoint": {**good["checkpoint"], "layout": _copy(good["checkpoint"]["layout"])}}
        mutate(doc["checkpoint"]["layout"])
        commit_metadata(repo, doc)
        err = one_line_error(checkout_again(repo))
        assert "layout in its metadata is malformed" in err or "nested too deeply" in err, err
    repo("reset", "-q", "--hard", "HEAD~8")
    assert torch.load(os.path.join(repo.cwd, "model.pt"), weights_only=True).keys() == small_model().keys()


def _copy(obj):
    import json

    return json.loads(json.dumps(obj))


def _deep(n: int) -> dict:
    node: dict = {"list": []}
    for _ in range(n):
        node = {"list": [node]}
    return node


def _swap_content(doc: dict, victim: str, source: str) -> None:
    """Point `victim` at `source`'s stored data, keeping victim's content hash (the attack)."""
    params = doc["parameters"]
    v, s = params[victim], params[source]
    v["lfs_metadata"] = dict(s["lfs_metadata"])
    v["theta_metadata"] = dict(s["theta_metadata"])


def test_content_hash_is_verified_on_checkout_fsck_and_re_add(repo):
    sd = small_model()
    path = commit_tracked_model(repo, sd)
    good = metadata_at(repo)
    doc = metadata_at(repo)
    _swap_content(doc, "layers.0.weight", "layers.1.weight")
    commit_metadata(repo, doc)

    fsck = repo.theta("fsck", "--no-fetch", check=False)
    assert fsck.returncode == 1
    assert "'layers.0.weight'" in fsck.stderr.decode() and "content hash" in fsck.stderr.decode()

    err = one_line_error(checkout_again(repo))
    assert "layers.0.weight" in err and "does not match the content hash" in err
    assert not os.path.exists(path) or torch.equal(
        torch.load(path, weights_only=True)["layers.0.weight"], sd["layers.0.weight"]
    )
    # the setting turns the check off (and shows what the attack did)
    env = {**repo.env, "GIT_THETA_VERIFY": "0"}
    subprocess.run(["git", "checkout", "--", "model.pt"], cwd=repo.cwd, env=env, check=True)
    assert torch.equal(torch.load(path, weights_only=True)["layers.0.weight"], sd["layers.1.weight"])

    # re-adding the honest file must not keep the attacker's entry (clean reuses by hash)
    torch.save(sd, path)
    repo("add", "model.pt")
    repo("commit", "-qm", "honest again")
    fixed = metadata_at(repo)["parameters"]["layers.0.weight"]
    attacked = doc["parameters"]["layers.0.weight"]
    assert (fixed["lfs_metadata"], fixed["theta_metadata"]) != (
        attacked["lfs_metadata"],
        attacked["theta_metadata"],
    )
    assert fixed["tensor_metadata"] == good["parameters"]["layers.0.weight"]["tensor_metadata"]
    problems = repo.theta("fsck", "--no-fetch", check=False).stderr.decode()
    assert repo.out("rev-parse", "HEAD")[:10] not in problems and "index" not in problems
    checkout_again(repo)
    assert torch.equal(torch.load(path, weights_only=True)["layers.0.weight"], sd["layers.0.weight"])


def _legacy_build_on_uint16() -> bytes:
    """A legacy torch file whose pickle sets the state of the torch.uint16 global to int16."""
    import pickle

    from git_theta.formats.pytorch import _SYS_INFO, LEGACY_MAGIC, LEGACY_PROTOCOL

    main = (
        b"\x80\x02}(X\x01\x00\x00\x00x"
        + b"ctorch\nuint16\n"
        + b"}X\x05\x00\x00\x00valueX\x05\x00\x00\x00int16sb"  # BUILD {"value": "int16"} on it
        + b"u."
    )
    head = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, LEGACY_PROTOCOL, _SYS_INFO))
    return head + main + pickle.dumps([], protocol=2)


def test_a_file_cannot_change_how_the_next_file_is_read(repo):
    repo.theta("track", "*.pt")
    with open(os.path.join(repo.cwd, "a.pt"), "wb") as f:
        f.write(_legacy_build_on_uint16())
    honest = {"w": torch.arange(5, dtype=torch.int32).to(torch.uint16) * 9000}
    torch.save(honest, os.path.join(repo.cwd, "b.pt"))
    err = one_line_error(repo("add", "-A", check=False))  # one filter process reads a.pt, then b.pt
    assert "a.pt" in err and "refusing to set the state" in err
    os.remove(os.path.join(repo.cwd, "a.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "b")
    assert metadata_at(repo, "b.pt")["parameters"]["w"]["tensor_metadata"]["dtype"] == "uint16"


def test_no_state_survives_from_one_file_to_the_next_in_a_process():
    from git_theta.errors import CheckpointError
    from git_theta.formats.pytorch import PyTorchCheckpoint

    fmt = PyTorchCheckpoint()
    try:
        fmt.read(memoryview(_legacy_build_on_uint16()), "a.pt")
    except CheckpointError:
        pass
    import io

    buf = io.BytesIO()
    torch.save({"w": torch.arange(3, dtype=torch.int32).to(torch.uint16)}, buf)
    assert fmt.read(memoryview(buf.getvalue()), "b.pt").tensors["w"].dtype == "uint16"


def _run_capped(repo, args, memory: int = 3 << 30, seconds: int = 120):
    """A git command under an address-space cap and a time limit: a regression fails, it does
    not eat the machine."""
    return subprocess.run(
        ["timeout", str(seconds), "prlimit", f"--as={memory}", "git", *args],
        cwd=repo.cwd,
        env=repo.env,
        capture_output=True,
    )


def _npz_with_member(payload: bytes, declared: int | None = None) -> bytes:
    """An .npz whose one deflated member holds `payload`, its sizes declared as `declared`."""
    import io
    import struct
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", payload)
    raw = bytearray(buf.getvalue())
    if declared is not None:
        for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            pos = raw.find(sig)
            struct.pack_into("<I", raw, pos + at, declared)
    return bytes(raw)


def test_compressed_member_bombs_are_refused(repo):
    import io

    import numpy as np

    repo.theta("track", "*.npz")
    small = io.BytesIO()
    np.save(small, np.zeros(10, np.float32))
    header = small.getvalue()[:-40]
    padded = header + b"\0" * (200 << 20)  # a header claiming 10 floats, then 200 MB of zeros
    cases = {
        "lies.npz": _npz_with_member(padded, declared=len(header) + 40),  # declares 168 bytes
        "claims.npz": _npz_with_member(padded),  # declares the truth, header claims 168 bytes
    }
    for name, blob in cases.items():
        assert len(blob) < 1 << 20
        with open(os.path.join(repo.cwd, name), "wb") as f:
            f.write(blob)
        err = one_line_error(_run_capped(repo, ["add", name]))
        assert f"{name}: zip member w.npy" in err
    assert ".npz" not in repo.out("ls-files")


def test_pickle_fan_out_is_bounded(repo):
    import pickle

    from git_theta.formats.pytorch import _SYS_INFO, LEGACY_MAGIC, LEGACY_PROTOCOL

    obj: list = []
    for _ in range(8):  # 10**8 list slots from a pickle of about 1.7 kB
        obj = [obj] * 10
    body = pickle.dumps({"w": obj}, protocol=2)
    head = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, LEGACY_PROTOCOL, _SYS_INFO))
    repo.theta("track", "fan.pt")
    with open(os.path.join(repo.cwd, "fan.pt"), "wb") as f:
        f.write(head + body + pickle.dumps([], protocol=2))
    err = one_line_error(_run_capped(repo, ["add", "fan.pt"], seconds=60))
    assert "fan.pt: checkpoint pickle expands to more than" in err


def _craft_entry(doc: dict, name: str, oid: str, size: int, shape=None, theta=None) -> None:
    entry = doc["parameters"][name]
    if shape is not None:
        entry["tensor_metadata"]["shape"] = shape
    entry["lfs_metadata"].update(oid=oid, size=size)
    entry["theta_metadata"] = theta or {"update_type": "dense", "codec": entry["theta_metadata"]["codec"]}


def test_objects_too_small_for_what_metadata_claims_are_refused_before_allocating(repo):
    import json

    import msgpack

    from tests.hostile import put_object

    commit_tracked_model(repo, small_model())
    zarray = {
        "chunks": [2, 1048576],
        "compressor": {"blocksize": 0, "clevel": 9, "cname": "lz4", "id": "blosc", "shuffle": 2},
        "dimension_separator": ".",
        "dtype": "<f4",
        "fill_value": None,
        "filters": None,
        "order": "C",
        "shape": [768, 1048576],
        "zarr_format": 2,
    }
    blob = msgpack.packb({".zarray": json.dumps(zarray, separators=(",", ":")).encode()}, use_bin_type=True)
    assert len(blob) < 300
    oid, size = put_object(repo, blob)
    doc = metadata_at(repo)
    _craft_entry(doc, "head.weight", oid, size, shape=[768, 1048576])
    commit_metadata(repo, doc)
    os.remove(os.path.join(repo.cwd, "model.pt"))
    err = one_line_error(_run_capped(repo, ["checkout", "--", "model.pt"], memory=2 << 30))
    assert "head.weight" in err and "chunks its shape needs" in err
    fsck = repo.theta("fsck", "--no-fetch", check=False)
    assert fsck.returncode == 1 and "chunks its shape needs" in fsck.stderr.decode()


def test_crafted_low_rank_parts_are_refused_before_computing(repo):
    import numpy as np

    from git_theta.tensor import RawTensor
    from git_theta.updates.delta import pack_parts
    from tests.hostile import put_object

    commit_tracked_model(repo, small_model())
    parts = {  # R @ C would be 32 x 8,000,000 floats (1 GB) for a 32 x 16 parameter
        "R": RawTensor.from_numpy(np.zeros((32, 1), np.float32)),
        "C": RawTensor.from_numpy(np.zeros((1, 8_000_000), np.float32)),
    }
    oid, size = put_object(repo, pack_parts(parts))
    assert size < 1 << 20
    doc = metadata_at(repo)
    base = _copy(doc["parameters"]["embed.weight"])
    theta = {"update_type": "low-rank", "codec": base["theta_metadata"]["codec"], "base": base}
    _craft_entry(doc, "embed.weight", oid, size, theta=theta)
    commit_metadata(repo, doc)
    os.remove(os.path.join(repo.cwd, "model.pt"))
    err = one_line_error(_run_capped(repo, ["checkout", "--", "model.pt"], memory=2 << 30))
    assert "embed.weight" in err and "bytes of parts" in err


def test_safetensors_with_overlapping_offsets_is_refused(repo):
    import json
    import struct

    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    blob = struct.pack("<Q", len(raw)) + raw + bytes(range(24))
    try:  # the reference reader refuses it
        from safetensors.numpy import load

        load(blob)
        raise AssertionError("safetensors accepted overlapping offsets")
    except Exception as exc:
        assert "AssertionError" not in type(exc).__name__
    repo.theta("track", "m.safetensors")
    with open(os.path.join(repo.cwd, "m.safetensors"), "wb") as f:
        f.write(blob)
    err = one_line_error(repo("add", "m.safetensors", check=False))
    assert "m.safetensors: tensor 'b' overlaps another tensor" in err


def _crafted_updates():
    import numpy as np

    from git_theta.tensor import RawTensor

    def t(a):
        return RawTensor.from_numpy(np.asarray(a))

    return {
        "sparse": {"gaps": t(np.ones(3, np.uint8)), "values": t(np.ones(5, np.float32))},
        "sparse-far": {"gaps": t(np.full(3, 255, np.uint8)), "values": t(np.ones(3, np.float32))},
        "sparse-csr": {"data": t(np.ones(2, np.float32)), "indices": t(np.array([1, 10**6]))},
        "low-rank": {"R": t(np.ones((32, 2), np.float32)), "C": t(np.ones((3, 16), np.float32))},
        "ia3": {"ia3": t(np.ones(3, np.float32))},
        "bitdelta": {"delta": t(np.ones(10**4, np.uint32))},
    }


def test_crafted_updates_and_slices_give_one_line_everywhere(repo):
    import git_theta
    from git_theta.errors import ThetaError
    from git_theta.updates.delta import pack_parts
    from tests.hostile import put_object

    commit_tracked_model(repo, small_model())
    good = metadata_at(repo)
    for kind, parts in _crafted_updates().items():
        oid, size = put_object(repo, pack_parts(parts))
        doc = _copy(good)
        base = _copy(good["parameters"]["embed.weight"])
        theta = {
            "update_type": kind.split("-")[0] if kind != "low-rank" else kind,
            "codec": "x",
            "base": base,
        }
        _craft_entry(doc, "embed.weight", oid, size, theta=theta)
        _check_one_line_everywhere(repo, doc, kind)
    doc = _copy(good)
    doc["parameters"]["embed.weight"]["theta_metadata"]["pack"] = ["x", 5]
    _check_one_line_everywhere(repo, doc, "pack slice")
    for depth in (450, 950):
        doc = _copy(good)
        doc["parameters"]["embed.weight"]["theta_metadata"]["note"] = "DEEP"
        raw = json.dumps(doc).replace('"DEEP"', "[" * depth + "]" * depth)
        blob = (
            repo("hash-object", "-w", "--no-filters", "--stdin", input=raw.encode()).stdout.decode().strip()
        )
        repo("update-index", "--cacheinfo", f"100644,{blob},model.pt")
        repo("commit", "-qm", f"deep {depth}")
        _check_commands(repo, f"depth {depth}")
        with_load(git_theta, ThetaError, repo)


def _check_one_line_everywhere(repo, doc, what):
    import git_theta
    from git_theta.errors import ThetaError

    commit_metadata(repo, doc, message=what)
    _check_commands(repo, what)
    with_load(git_theta, ThetaError, repo)


def _check_commands(repo, what):
    fsck = repo.theta("fsck", "--no-fetch", check=False)
    assert fsck.returncode == 1 and "Traceback" not in fsck.stderr.decode(), (what, fsck.stderr)
    diff = repo.theta("diff", "HEAD~1", "HEAD", check=False)
    assert "Traceback" not in diff.stderr.decode() + diff.stdout.decode(), (what, diff.stderr)
    err = one_line_error(checkout_again(repo))
    assert "model.pt" in err, (what, err)


def with_load(git_theta, error, repo):
    try:
        git_theta.load("model.pt", "HEAD", repo=repo.cwd, framework="numpy")
    except error:
        return
    raise AssertionError("git_theta.load accepted crafted metadata")


def test_fsck_decodes_every_slice_of_a_shared_pack(repo):
    """Small tensors share one pack object; a commit whose second slice of it is cut short must be
    reported by fsck (which used to decode only the first user of each object), as checkout fails."""
    commit_tracked_model(repo, small_model())
    doc = metadata_at(repo)
    packed = [n for n in doc["checkpoint"]["order"] if "pack" in doc["parameters"][n]["theta_metadata"]]
    by_object: dict[str, list[str]] = {}
    for name in packed:
        by_object.setdefault(doc["parameters"][name]["lfs_metadata"]["oid"], []).append(name)
    users = max(by_object.values(), key=len)
    assert len(users) >= 2, "the model's small tensors should share a pack object"
    users.sort(key=lambda n: doc["parameters"][n]["theta_metadata"]["pack"][0])
    second = users[1]
    offset, length = doc["parameters"][second]["theta_metadata"]["pack"]
    doc["parameters"][second]["theta_metadata"]["pack"] = [offset, length // 2]
    commit_metadata(repo, doc, message="second slice cut short")

    fsck = repo.theta("fsck", "--no-fetch", check=False)
    err = fsck.stderr.decode() + fsck.stdout.decode()
    assert fsck.returncode == 1 and "Traceback" not in err, err
    assert second in err, err
    assert "model.pt" in one_line_error(checkout_again(repo))
