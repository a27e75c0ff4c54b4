"""The diff driver (drivers.diff) as git runs it: `diff.theta.command` for `git diff`, and
`diff.theta.textconv` for `git diff --no-ext-diff` / `git log -p`."""

import os

import pytest
import torch

from git_theta.metadata import Metadata
from tests.helpers import commit_tracked_model, save, small_model


@pytest.fixture
def sparse_change(repo):
    """v1 (with a tensor too large to be packed), then v2 with 1% of that tensor's elements changed."""
    v1 = small_model(0)
    v1["big.weight"] = torch.randn(600, 600, generator=torch.Generator().manual_seed(1))
    commit_tracked_model(repo, v1, message="v1")
    v2 = type(v1)(v1)
    big = v1["big.weight"].clone()
    big.view(-1)[::100] += 1.0
    v2["big.weight"] = big
    save(v2, os.path.join(repo.cwd, "model.pt"))
    repo("commit", "-qam", "v2")
    return repo


def test_external_diff_names_the_changed_parameter_its_share_and_stored_type(sparse_change):
    lines = sparse_change.out("diff", "HEAD~1", "HEAD").splitlines()
    assert lines[0] == "diff --git-theta a/model.pt b/model.pt"
    assert lines[1].startswith("model.pt: 1 of 7 parameters changed (1 modified, 0 added, 0 removed)")
    assert [line.split()[:2] for line in lines[2:] if line.strip()] == [["modified", "big.weight"]]
    stored = Metadata.loads(sparse_change("cat-file", "blob", "HEAD:model.pt").stdout, "model.pt")
    kind = stored.params["big.weight"].update_type
    assert kind != "dense" and f"float32[600, 600]  {kind}  changed 1.0%" in lines[2]


def test_textconv_diff_shows_one_line_pair_for_the_changed_parameter(sparse_change):
    out = sparse_change.out("diff", "--no-ext-diff", "HEAD~1", "HEAD")
    # listing lines: name, dtype[shape], update type, stored size, hash, two spaces apart
    removed = [line.split("  ") for line in out.splitlines() if line[:1] == "-" and line[:2] != "--"]
    added = [line.split("  ") for line in out.splitlines() if line[:1] == "+" and line[:2] != "++"]
    # the header line (its stored total) and the changed parameter's line, nothing else
    assert [words[0].split()[0] for words in removed] == ["-git-theta", "-big.weight"]
    assert [words[0].split()[0] for words in added] == ["+git-theta", "+big.weight"]
    assert removed[1][2] == "dense" and added[1][2] != "dense"


def test_a_working_tree_change_is_diffed_before_it_is_stored(sparse_change):
    v3 = torch.load(os.path.join(sparse_change.cwd, "model.pt"))
    v3["head.weight"] = v3["head.weight"] * -1
    save(v3, os.path.join(sparse_change.cwd, "model.pt"))
    out = sparse_change.out("diff")
    assert "1 of 7 parameters changed" in out and "head.weight" in out and "not stored yet" in out
