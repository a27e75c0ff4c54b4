"""End to end: ONNX models through git, inline (track *.onnx) and with external data (track the
data file; the .onnx stays an ordinary git file)."""

import os

import numpy as np
import pytest

from tests import onnxs
from tests.helpers import lfs_objects, metadata_doc


def assert_same(got: dict, want: dict) -> None:
    assert set(want) <= set(got)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_add_change_checkout_clone(repo, bare_remote, tmp_path, external):
    tracked = "model.onnx.data" if external else "model.onnx"
    repo.theta("track", "*.onnx.data" if external else "*.onnx")
    path = os.path.join(repo.cwd, "model.onnx")
    v1 = onnxs.weights(0)
    onnxs.save(path, v1, external)
    files1 = {f: open(os.path.join(repo.cwd, f), "rb").read() for f in ("model.onnx", tracked)}
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    meta = metadata_doc(repo, tracked)
    assert meta["checkpoint"]["format"] == "onnx"
    stored = set(lfs_objects(repo.cwd))
    v2 = dict(v1, w1=v1["w1"] * 2)  # one initializer changes
    onnxs.save(path, v2, external)
    files2 = {f: open(os.path.join(repo.cwd, f), "rb").read() for f in ("model.onnx", tracked)}
    repo("commit", "-qam", "v2")
    assert len(set(lfs_objects(repo.cwd)) - stored) == 1
    out = repo.out("diff", "HEAD~1", "HEAD")
    assert "w1  float32[16, 32]" in out and "1 of " in out
    for rev, files, weights in (("HEAD~1", files1, v1), ("main", files2, v2)):
        repo("checkout", "-q", rev)
        assert {f: open(os.path.join(repo.cwd, f), "rb").read() for f in files} == files
        assert_same(onnxs.initializers(path), weights)  # onnx.checker passes
        assert repo.status() == ""
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "clone")
    repo("clone", "-q", bare_remote, clone)
    assert open(os.path.join(clone, tracked), "rb").read() == files2[tracked]
    assert repo.at(clone).status() == ""


def test_merge_and_python_api(repo):
    import git_theta

    repo.theta("track", "*.onnx")
    path = os.path.join(repo.cwd, "model.onnx")
    base = onnxs.weights(0)
    onnxs.save(path, base)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    onnxs.save(path, dict(base, w1=base["w1"] + 1, b1=base["b1"] * 3))
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    onnxs.save(path, dict(base, w1=base["w1"] - 1))
    repo("commit", "-qam", "ours")
    env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="average-ours-theirs")
    type(repo)(repo.cwd, env)("merge", "--no-edit", "other")
    got = onnxs.initializers(path)
    np.testing.assert_allclose(got["w1"], base["w1"], atol=1e-6)
    assert got["b1"].tobytes() == (base["b1"] * 3).tobytes()
    assert repo.status() == ""

    sd = git_theta.load("model.onnx", repo=repo.cwd, framework="numpy")
    sd["w2"] = np.zeros((32, 4), np.float16)
    git_theta.save(sd, "model.onnx", repo=repo.cwd, message="api", materialize=True)
    assert not onnxs.initializers(path)["w2"].any()
    sd["w2"] = np.zeros((4, 32), np.float16)
    with pytest.raises(Exception, match=r"'w2' is float16\[32, 4\] in the ONNX graph"):
        git_theta.save(sd, "model.onnx", repo=repo.cwd, message="bad")
    assert repo.status() == ""
