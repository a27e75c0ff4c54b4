"""The merge driver (drivers.merge) as `git merge` runs it on two branches of a small model."""

import os

import numpy as np
import pytest
import torch

from tests.helpers import commit_tracked_model, lfs_objects, load, save, small_model


def _branch(repo, name: str, base: dict, changes: dict) -> dict:
    """Commit `base` with `changes` applied on a new branch `name` (from main); back to main."""
    repo("switch", "-q", "-c", name, "main")
    sd = type(base)(base)
    sd.update(changes)
    save(sd, os.path.join(repo.cwd, "model.pt"))
    repo("commit", "-qam", name)
    repo("switch", "-q", "main")
    return sd


@pytest.fixture
def base(repo) -> dict:
    sd = small_model(0)
    commit_tracked_model(repo, sd, message="base")
    return sd


def test_branches_changing_different_parameters_merge_bit_exact_without_new_objects(repo, base):
    theirs = _branch(repo, "theirs", base, {"embed.weight": base["embed.weight"] * 2})
    ours = _branch(repo, "ours", base, {"head.weight": base["head.weight"] - 1})
    repo("merge", "-q", "--ff-only", "ours")
    before = set(lfs_objects(repo.cwd))
    repo("merge", "-q", "--no-edit", "theirs")
    merged = load(os.path.join(repo.cwd, "model.pt"))
    assert torch.equal(merged["embed.weight"], theirs["embed.weight"])
    assert torch.equal(merged["head.weight"], ours["head.weight"])
    for name in ("layers.0.weight", "layers.1.weight", "layers.0.bias"):
        assert torch.equal(merged[name], base[name])
    assert set(lfs_objects(repo.cwd)) == before  # each side's stored entries, reused
    assert repo.status() == ""
    assert repo.theta("fsck", "--no-fetch").returncode == 0


def test_a_conflict_is_resolved_by_the_configured_strategy(repo, base):
    theirs = _branch(repo, "theirs", base, {"layers.1.weight": base["layers.1.weight"] + 4})
    ours = _branch(repo, "ours", base, {"layers.1.weight": base["layers.1.weight"] * 0.5})
    repo("merge", "-q", "--ff-only", "ours")
    repo("config", "theta.merge.strategy", "average-ours-theirs")
    repo("merge", "-q", "--no-edit", "theirs")
    merged = load(os.path.join(repo.cwd, "model.pt"))["layers.1.weight"].numpy()
    a, b = ours["layers.1.weight"].numpy(), theirs["layers.1.weight"].numpy()
    np.testing.assert_allclose(merged, (a + b) / 2, rtol=1e-6)
    assert repo.status() == "" and len(repo.out("log", "--format=%H").split()) == 4
    # stored like any commit: the merged model checks out again from its metadata alone
    os.remove(os.path.join(repo.cwd, "model.pt"))
    repo("checkout", "--", "model.pt")
    np.testing.assert_array_equal(load(os.path.join(repo.cwd, "model.pt"))["layers.1.weight"].numpy(), merged)
