"""End to end: sparse updates chained on earlier versions, bounded, with exact checkouts."""

import json
import os

import torch

from tests.helpers import assert_same_state, load, save, small_model


def sparse_history(repo, commits: int, env_extra: dict):
    env = dict(repo.env, GIT_THETA_UPDATE_TYPE="sparse", **env_extra)
    g = type(repo)(repo.cwd, env)
    g.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    sd = small_model(0, width=64)
    versions = []
    for i in range(commits):
        if i:
            sd = type(sd)((k, v.clone()) for k, v in sd.items())
            sd["embed.weight"].view(-1)[i * 7] += 1.0  # one element changes
        save(sd, path)
        g("add", "-A")
        g("commit", "-qm", f"v{i}")
        versions.append((g.out("rev-parse", "HEAD").strip(), sd))
    return g, versions


def test_sparse_changes_store_little_and_check_out_exactly(repo):
    g, versions = sparse_history(repo, 4, {})
    meta = json.loads(g.out("show", "HEAD:model.pt"))
    embed = meta["parameters"]["embed.weight"]
    assert embed["theta_metadata"]["update_type"] == "sparse" and embed["theta_metadata"]["depth"] == 3
    assert embed["lfs_metadata"]["size"] < 2000  # vs 8 kB for the whole tensor
    for sha, sd in versions:
        g("checkout", "-q", sha)
        assert_same_state(load(os.path.join(repo.cwd, "model.pt")), sd)
        assert g.status() == ""
    assert g.theta("fsck", "--no-fetch").returncode == 0


def test_chain_is_bounded_by_max_chain(repo):
    g, versions = sparse_history(repo, 7, {"GIT_THETA_MAX_CHAIN": "3"})
    depths = []
    for sha, sd in versions:
        meta = json.loads(g.out("show", f"{sha}:model.pt"))
        depths.append(meta["parameters"]["embed.weight"]["theta_metadata"].get("depth", 0))
        g("checkout", "-q", sha)
        assert_same_state(load(os.path.join(repo.cwd, "model.pt")), sd)
    assert max(depths) == 2 and depths.count(0) >= 2  # a dense snapshot every 3 steps


def test_shape_change_falls_back_to_dense_and_clone_works(repo, bare_remote, tmp_path):
    g, versions = sparse_history(repo, 3, {})
    sd = type(versions[-1][1])(versions[-1][1])  # a copy: versions keeps v2 as it was
    sd["embed.weight"] = torch.cat([sd["embed.weight"], torch.ones(2, 64)])
    save(sd, os.path.join(repo.cwd, "model.pt"))
    g("commit", "-qam", "grow")
    meta = json.loads(g.out("show", "HEAD:model.pt"))
    assert meta["parameters"]["embed.weight"]["theta_metadata"]["update_type"] == "dense"
    g("remote", "add", "origin", bare_remote)
    g("push", "-q", "origin", "main")
    clone = str(tmp_path / "clone")
    g("clone", "-q", bare_remote, clone, cwd=str(tmp_path))
    c = g.at(clone)
    c("checkout", "-q", "HEAD~1")  # a sparse chain: its base objects are fetched with it
    assert_same_state(load(os.path.join(clone, "model.pt")), versions[2][1])
