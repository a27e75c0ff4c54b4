"""End to end: typed updates through `git theta add` and plain `git add`, as users run them."""

import os

import numpy as np
import pytest
import torch

from git_theta.metadata import Metadata
from git_theta.updates import chain
from tests.helpers import assert_same_state, load, save, small_model


def meta_at(g, rev: str = "HEAD") -> Metadata:
    return Metadata.loads(g.out("show", f"{rev}:model.pt").encode())


def copy(sd):
    return type(sd)((k, v.clone()) for k, v in sd.items())


def commit(g, sd, msg, *add_args):
    save(sd, os.path.join(g.cwd, "model.pt"))
    if add_args:
        g.theta("add", "model.pt", *add_args)
    else:
        g("add", "model.pt")
    g("commit", "-q", "--allow-empty", "-m", msg)
    return g.out("rev-parse", "HEAD").strip()


def change(kind: str, sd, step: int):
    """One of the changes users commit, on a copy of `sd`."""
    g = torch.Generator().manual_seed(step)
    sd = copy(sd)
    if kind == "fine-tune":
        for k in sd:
            sd[k] = sd[k] + torch.randn(sd[k].shape, generator=g) * 1e-3
    elif kind == "sparse":
        flat = sd["embed.weight"].view(-1)
        flat[torch.randperm(flat.numel(), generator=g)[:5]] += 1
    elif kind == "rows":
        sd["embed.weight"][step % 32] = torch.randn(sd["embed.weight"].shape[1], generator=g)
    elif kind == "grow":
        sd["embed.weight"] = torch.cat([sd["embed.weight"], torch.randn(2, sd["embed.weight"].shape[1])])
    elif kind == "layer":
        sd["layers.1.weight"] = torch.randn(sd["layers.1.weight"].shape, generator=g)
    elif kind == "cast":
        sd["head.weight"] = sd["head.weight"].to(torch.float64)
    elif kind == "new-param":
        sd[f"extra.{step}"] = torch.randn(3, generator=g)
    return sd


def test_twenty_commit_history_checks_out_exactly(repo):
    repo.theta("track", "model.pt")
    sd = small_model(0, width=64)
    kinds = [
        "fine-tune",
        "sparse",
        "rows",
        "fine-tune",
        "grow",
        "sparse",
        "layer",
        "resave",
        "cast",
        "sparse",
    ]
    versions = [(commit(repo, sd, "v0"), sd)]
    for step in range(1, 20):
        kind = kinds[step % len(kinds)]
        sd = change(kind, sd, step)
        sha = commit(repo, sd, f"v{step} {kind}")
        versions.append((sha, sd))
    resave = [i for i in range(1, 20) if kinds[i % len(kinds)] == "resave"][0]
    trees = [repo.out("rev-parse", f"{sha}^{{tree}}") for sha, _ in versions]
    assert trees[resave] == trees[resave - 1]  # a re-save stores nothing new
    types = set()
    for sha, expected in versions:
        meta = meta_at(repo, sha)
        for name, entry in meta.params.items():
            types.add(entry.update_type)
            assert len(chain.chain_of(entry, name)) <= chain.max_chain()
        repo("checkout", "-q", sha)
        assert_same_state(load(os.path.join(repo.cwd, "model.pt")), expected)
        assert repo.status() == ""
    assert {"dense", "sparse", "bitdelta"} <= types
    assert repo.theta("fsck", "--no-fetch").returncode == 0


def test_sparse_chain_longer_than_k_takes_snapshots(repo):
    # storage first: on these 8 kB tensors the bounded policy cuts chains before MAX_CHAIN does
    env = dict(
        repo.env, GIT_THETA_UPDATE_TYPE="sparse", GIT_THETA_MAX_CHAIN="3", GIT_THETA_STORAGE_POLICY="smallest"
    )
    g = type(repo)(repo.cwd, env)
    g.theta("track", "model.pt")
    sd = small_model(0, width=64)
    versions = [(commit(g, sd, "v0"), sd)]
    for i in range(1, 8):
        sd = copy(sd)
        sd["embed.weight"].view(-1)[i * 7] += 1.0
        versions.append((commit(g, sd, f"v{i}"), sd))
    lengths = []
    for sha, expected in versions:
        entry = meta_at(g, sha).params["embed.weight"]
        lengths.append(len(chain.chain_of(entry)))
        g("checkout", "-q", sha)
        assert_same_state(load(os.path.join(g.cwd, "model.pt")), expected)
    # never more than 3 stored steps: past that the chain restarts from the snapshot
    assert max(lengths) == 3 and all(b <= 2 for a, b in zip(lengths, lengths[1:]) if a == 3)
    assert meta_at(g, versions[1][0]).params["embed.weight"].size < 2000  # vs 8 kB dense


def side_update(kind: str, sd):
    """(side file dict in the original layout, expected new state computed with numpy)."""
    rng = np.random.default_rng(7)
    name = "layers.0.weight"
    prev = sd[name].numpy()
    if kind == "sparse":
        idx = np.array([3, 17, 200], dtype=np.int64)
        data = rng.standard_normal(3).astype(np.float32)
        side = {"data": data, "indices": idx, "indptr": np.array([0, 3]), "shape": np.array(prev.shape)}
        dense = np.zeros(prev.size, np.float32)
        dense[idx] = data
        new = prev + dense.reshape(prev.shape)
    elif kind == "low-rank":
        r = rng.standard_normal((prev.shape[0], 2)).astype(np.float32)
        c = rng.standard_normal((2, prev.shape[1])).astype(np.float32)
        side, new = {"R": r, "C": c}, prev + r @ c
    else:
        scale = rng.standard_normal((prev.shape[0], 1)).astype(np.float32)
        side, new = {"ia3": scale}, prev * scale
    expected = copy(sd)
    expected[name] = torch.from_numpy(np.ascontiguousarray(new))
    return {f"{name}/{part}": torch.from_numpy(np.asarray(v)) for part, v in side.items()}, expected


@pytest.mark.parametrize("kind", ["sparse", "low-rank", "ia3"])
def test_original_side_loaded_flow(repo, kind):
    # storage first: on a 16 kB matrix the factors' headers alone pass the bounded policy's room
    repo("config", "theta.storagePolicy", "smallest")
    repo.theta("track", "model.pt")
    sd = small_model(0, width=64)
    first = commit(repo, sd, "init")
    side, expected = side_update(kind, sd)
    torch.save(side, os.path.join(repo.cwd, "update.pt"))
    second = commit(repo, sd, "update", "--update-type", kind, "--update-data", "update.pt")
    assert repo.status().strip() == "?? update.pt"  # the working file holds the stored values
    entry = meta_at(repo).params["layers.0.weight"]
    assert entry.update_type == kind and chain.depth(entry) == 1
    assert entry.size < sd["layers.0.weight"].numel() * 4 / 4  # only the update is stored
    assert meta_at(repo).params["embed.weight"] == meta_at(repo, first).params["embed.weight"]
    for sha, state in [(first, sd), (second, expected), (first, sd), (second, expected)]:
        repo("checkout", "-q", sha)
        assert_same_state(load(os.path.join(repo.cwd, "model.pt")), state)


def test_side_file_keeps_other_working_changes(repo):
    repo.theta("track", "model.pt")
    sd = small_model(0, width=32)
    commit(repo, sd, "init")
    side, expected = side_update("low-rank", sd)
    torch.save(side, os.path.join(repo.cwd, "update.pt"))
    edited = copy(sd)
    edited["head.weight"] += 1  # a change the side file does not name
    expected["head.weight"] = edited["head.weight"]
    commit(repo, edited, "both", "--update-type", "low-rank", "--update-data", "update.pt")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), expected)
    repo("checkout", "-q", "HEAD~1")
    repo("checkout", "-q", "-")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), expected)


def test_original_low_rank_layout_for_a_conv_kernel(repo):
    """The original's side file for a (16, 3, 3, 3) kernel: R (16, 3, 3, 2) @ C (2, 3), batched matmul."""
    repo("config", "theta.storagePolicy", "smallest")  # a 1.7 kB kernel: see above
    repo.theta("track", "model.pt")
    g = torch.Generator().manual_seed(3)
    sd = {"conv.weight": torch.randn(16, 3, 3, 3, generator=g), "fc.weight": torch.randn(6, 4, generator=g)}
    first = commit(repo, sd, "init")
    rng = np.random.default_rng(5)
    r = rng.uniform(size=(16, 3, 3, 2)).astype(np.float32)
    c = rng.uniform(size=(2, 3)).astype(np.float32)
    torch.save(
        {"conv.weight/R": torch.from_numpy(r), "conv.weight/C": torch.from_numpy(c)},
        os.path.join(repo.cwd, "update.pt"),
    )
    commit(repo, sd, "low-rank", "--update-type", "low-rank", "--update-data", "update.pt")
    expected = dict(
        sd, **{"conv.weight": sd["conv.weight"] + torch.from_numpy(r @ c)}
    )  # as the original's model.py
    assert meta_at(repo).params["conv.weight"].update_type == "low-rank"
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), expected)
    repo("checkout", "-q", first)
    repo("checkout", "-q", "-")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), expected)
    assert repo.status().strip() == "?? update.pt"


@pytest.mark.parametrize(
    "side, message",
    [
        (
            {"nope.weight/R": torch.ones(32, 2), "nope.weight/C": torch.ones(2, 32)},
            "parameters the model lacks: nope.weight",
        ),
        (
            {"layers.0.weight/R": torch.ones(5, 2), "layers.0.weight/C": torch.ones(2, 32)},
            "layers.0.weight: R [5, 2]",
        ),
        ({"layers.0.weight/R": torch.ones(32, 2)}, "incomplete updates: layers.0.weight (no C)"),
        ({"layers.0.weight": torch.ones(32, 2)}, "keys not of the form <parameter>/<R|C>: layers.0.weight"),
    ],
)
def test_bad_side_file_is_refused_and_nothing_staged(repo, side, message):
    repo.theta("track", "model.pt")
    sd = small_model(0, width=32)
    commit(repo, sd, "init")
    edited = copy(sd)
    edited["head.weight"] += 1
    save(edited, os.path.join(repo.cwd, "model.pt"))
    torch.save(side, os.path.join(repo.cwd, "update.pt"))
    before = open(os.path.join(repo.cwd, "model.pt"), "rb").read()
    r = repo.theta("add", "model.pt", "--update-type", "low-rank", "--update-data", "update.pt", check=False)
    err = r.stderr.decode()
    assert r.returncode != 0 and message in err and "nothing staged" in err and "Traceback" not in err
    assert repo.out("diff", "--cached", "--name-only") == ""
    assert open(os.path.join(repo.cwd, "model.pt"), "rb").read() == before


def test_computed_low_rank_rewrites_the_working_file(repo):
    repo.theta("track", "model.pt")
    sd = small_model(0, width=32)
    commit(repo, sd, "init")
    new = copy(sd)
    g = torch.Generator().manual_seed(3)
    new["layers.0.weight"] += torch.randn(32, 2, generator=g) @ torch.randn(2, 32, generator=g) * 0.1
    new["layers.0.bias"] += 0.5  # a vector: stored exactly
    save(new, os.path.join(repo.cwd, "model.pt"))
    r = repo.theta("add", "model.pt", "--update-type", "low-rank")
    assert "rank-2 approximation" in r.stderr.decode()
    assert repo.status().strip() == "M  model.pt"
    meta = Metadata.loads(repo("show", ":model.pt").stdout)
    assert meta.params["layers.0.weight"].update_type == "low-rank"
    got = load(os.path.join(repo.cwd, "model.pt"))
    assert torch.allclose(got["layers.0.weight"], new["layers.0.weight"], atol=1e-5)
    assert torch.equal(got["layers.0.bias"], new["layers.0.bias"])


def test_chain_objects_are_fetched_on_clone(repo, bare_remote, tmp_path):
    repo.theta("track", "model.pt")
    sd = small_model(0, width=64)
    commit(repo, sd, "v0")
    v1 = change("sparse", sd, 1)
    commit(repo, v1, "v1")
    v2 = change("grow", v1, 2)
    commit(repo, v2, "v2")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    clone = str(tmp_path / "clone")
    repo("clone", "-q", bare_remote, clone, cwd=str(tmp_path))
    c = repo.at(clone)
    assert_same_state(load(os.path.join(clone, "model.pt")), v2)
    c("checkout", "-q", "HEAD~1")
    assert_same_state(load(os.path.join(clone, "model.pt")), v1)
