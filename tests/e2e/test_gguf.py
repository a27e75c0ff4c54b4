"""End to end: GGUF files with mixed quantized tensors through git (add, change, checkout, clone,
diff, merge) and the Python API."""

import os

import numpy as np
import pytest

from tests import ggufs
from tests.helpers import lfs_objects, metadata_doc


def changed(tensors: dict, seed: int) -> dict:
    """A few tensors changed: one float, one Q8_0, one Q4_K."""
    new = ggufs.small_llm(seed)
    out = dict(tensors)
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight"):
        out[name] = new[name]
    return out


@pytest.fixture
def history(repo):
    """Two commits of model.gguf: the second changes three tensors."""
    repo.theta("track", "*.gguf")
    path = os.path.join(repo.cwd, "model.gguf")
    v1 = ggufs.small_llm(0)
    ggufs.write(path, v1)
    first = open(path, "rb").read()
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    stored = set(lfs_objects(repo.cwd))
    ggufs.write(path, changed(v1, 1))
    second = open(path, "rb").read()
    repo("commit", "-qam", "v2")
    return repo, path, first, second, stored


def test_add_change_checkout_clone_bit_exact(history, bare_remote, tmp_path):
    repo, path, first, second, stored = history
    meta = metadata_doc(repo, "model.gguf")
    assert meta["checkpoint"]["format"] == "gguf"
    assert meta["parameters"]["blk.0.ffn_down.weight"]["tensor_metadata"]["dtype"] == "uint8"
    assert len(set(lfs_objects(repo.cwd)) - stored) <= 3  # only the three changed tensors
    new_params = metadata_doc(repo, "model.gguf")["parameters"]
    old_params = metadata_doc(repo, "model.gguf", "HEAD~1")["parameters"]
    assert sorted(n for n in new_params if new_params[n] != old_params[n]) == [
        "blk.0.attn_q.weight",
        "blk.0.ffn_down.weight",
        "token_embd.weight",
    ]
    repo("checkout", "-q", "HEAD~1")
    assert open(path, "rb").read() == first and repo.status() == ""
    repo("checkout", "-q", "main")
    assert open(path, "rb").read() == second and repo.status() == ""
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "clone")
    repo("clone", "-q", bare_remote, clone)
    assert open(os.path.join(clone, "model.gguf"), "rb").read() == second
    assert repo.at(clone).status() == ""


def test_diff_shows_quantized_types(history):
    repo = history[0]
    out = repo.out("diff", "HEAD~1", "HEAD")
    assert "3 of 8 parameters changed" in out
    q4k = next(line for line in out.splitlines() if "blk.0.ffn_down.weight" in line)
    assert "Q4_K[4, 256]" in q4k and "values not compared" in q4k and "uint8" not in q4k
    f32 = next(line for line in out.splitlines() if "token_embd.weight" in line)
    assert "float32[16, 64]" in f32 and "rel " in f32
    listing = repo.out("show", "HEAD:model.gguf", "--textconv")
    assert "Q8_0[8, 64]" in listing


def test_merge_averages_floats_and_takes_a_side_for_quantized(history):
    repo, path, first, second, _ = history
    v1 = ggufs.small_llm(0)
    repo("switch", "-q", "-c", "other", "HEAD~1")
    ggufs.write(path, changed(v1, 2))
    theirs = ggufs.read(path)
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    ours = ggufs.read(path)
    env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="average-ours-theirs")
    proc = type(repo)(repo.cwd, env)("merge", "--no-edit", "other", check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "blk.0.ffn_down.weight (both-modified; Q4_K[4, 256] is quantized: only take_us" in err
    assert "token_embd.weight" not in err.split("changed on both sides")[1]  # averaged
    repo("merge", "--abort")
    repo("config", "--add", "theta.merge.rule", "blk.*=take_them")
    type(repo)(repo.cwd, env)("merge", "--no-edit", "other")
    merged = ggufs.read(path)
    for name in ("blk.0.attn_q.weight", "blk.0.ffn_down.weight"):
        assert merged[name] == theirs[name]
    mean = (np.frombuffer(ours["token_embd.weight"][2], np.float32).astype(np.float64)
            + np.frombuffer(theirs["token_embd.weight"][2], np.float32)) / 2  # fmt: skip
    assert merged["token_embd.weight"][2] == mean.astype(np.float32).tobytes()
    assert repo.status() == ""


def test_python_api_load_and_save(history):
    import git_theta

    repo, path, first, second, _ = history
    sd = git_theta.load("model.gguf", "HEAD~1", repo=repo.cwd, framework="numpy")
    assert sd["blk.0.ffn_down.weight"].dtype == np.uint8 and sd["blk.0.ffn_down.weight"].shape == (4, 144)
    sd["output_norm.weight"] = np.full(64, 3, np.float16)
    git_theta.save(sd, "model.gguf", repo=repo.cwd, message="api", materialize=True)
    back = ggufs.read(path)
    assert back["output_norm.weight"][2] == np.full(64, 3, np.float16).tobytes()
    assert back["blk.0.ffn_down.weight"] == ggufs.read(path)["blk.0.ffn_down.weight"]
    sd["blk.0.attn_q.weight"] = np.zeros((8, 64), np.float32)
    with pytest.raises(Exception, match="Q8_0"):
        git_theta.save(sd, "model.gguf", repo=repo.cwd, message="bad", materialize=True)
