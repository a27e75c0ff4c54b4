"""Which git command lines run the post-checkout hook (direct checkout defers only under those)."""

import pytest

from git_theta.filter.context import runs_post_checkout


@pytest.mark.parametrize(
    "argv",
    [
        ["git", "checkout", "-q", "v1"],
        ["git", "-C", "repo", "switch", "main"],
        ["git", "checkout", "HEAD~1", "--", "model.pt"],
        ["git", "restore", "--source", "v1", "model.pt"],
        ["git", "clone", "-q", "url", "dir"],
        ["git", "checkout", "v1", "--", "-p"],
    ],
)
def test_hooked(argv):
    assert runs_post_checkout(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["git", "reset", "--hard"],
        ["git", "stash", "pop"],
        ["git", "merge", "side"],
        ["git", "checkout", "-p", "v1"],
        ["git", "restore", "--patch", "model.pt"],
        ["git", "checkout", "-qp"],
        ["git"],
    ],
)
def test_not_hooked(argv):
    assert not runs_post_checkout(argv)
