"""`git-theta`: the pre-push hook's call takes the short way; every other call goes through click."""

import subprocess
import sys

import pytest

from git_theta.entry import _hook_call

RUN = [
    sys.executable,
    "-c",
    "import sys; from git_theta.entry import main; sys.argv[0] = 'git-theta'; main()",
]


@pytest.mark.parametrize(
    "args, short",
    [
        (["pre-push", "origin", "/srv/x.git"], True),
        (["pre-push", "origin"], True),
        (["pre-push", "--help"], False),
        (["pre-push"], False),
        (["pre-push", "a", "b", "c"], False),
        (["track", "m.pt"], False),
        ([], False),
    ],
)
def test_only_the_hooks_exact_call_takes_the_short_way(args, short):
    assert _hook_call(args) is short


def test_the_short_way_says_failures_as_the_cli_does(tmp_path):
    """Outside a repository: one line, exit 1, no traceback, through either way."""
    line = "refs/heads/main " + "1" * 40 + " refs/heads/main " + "0" * 40 + "\n"
    for args in (["pre-push", "origin", "x"], ["pre-push", "origin", "x", "--"]):
        r = subprocess.run([*RUN, *args], input=line, capture_output=True, text=True, cwd=tmp_path)
        if args[-1] == "--":  # not the hook's exact call: click's way (which refuses the extra argument)
            assert r.returncode != 0
            continue
        assert r.returncode == 1 and r.stderr.startswith("git-theta: error: ") and r.stderr.count("\n") == 1


def test_everything_else_is_the_click_program(tmp_path):
    r = subprocess.run([*RUN, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "Usage: git-theta" in r.stdout and "track" in r.stdout
