"""`git-theta`: the pre-push hook's call takes the short way; every other call goes through click;
and the error boundary every entry point runs in (errors.guarded)."""

import contextlib
import errno
import os
import shutil
import subprocess
import sys

import pytest

from git_theta.entry import _hook_call
from git_theta.errors import ThetaError, guarded
from tests.e2e.test_faults import mounted
from tests.e2e.test_merge import branches  # noqa: F401  the fixture

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


def test_the_boundary_says_an_expected_failure_in_one_line(capsys):
    def work():
        raise ThetaError("model.pt: something the user can fix\nand the fix")

    assert guarded(work) == 1
    err = capsys.readouterr().err
    assert err == "git-theta: error: model.pt: something the user can fix and the fix\n"


def test_the_boundary_passes_exit_codes_and_interrupts(capsys):
    assert guarded(lambda: None) == 0
    assert guarded(lambda: sys.exit(3)) == 3
    assert guarded(lambda: sys.exit("demo: went wrong")) == 1
    assert capsys.readouterr().err == "demo: went wrong\n"

    def interrupted():
        raise KeyboardInterrupt

    assert guarded(interrupted) == 130
    assert capsys.readouterr().err == ""


def test_the_boundary_says_a_full_disk_as_such(capsys):
    def work():
        raise OSError(errno.ENOSPC, "No space left on device", "/repo/.git/lfs/tmp/x")

    assert guarded(work, "git-theta-merge-cli") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "git-theta-merge-cli: error: no space left on the device holding /repo/.git/lfs/tmp/x"
    )
    assert err.count("\n") == 1


def test_an_unexpected_failure_is_one_line_pointing_at_the_debug_log(tmp_path):
    """A real entry point (the diff driver) on a file that is not there: a bug's short line, exit 1;
    with GIT_THETA_LOG_LEVEL=DEBUG the traceback too."""
    run = [sys.executable, "-c", "import sys; from git_theta.drivers.diff import main; main()"]
    missing = str(tmp_path / "missing.pt")
    env = {k: v for k, v in os.environ.items() if k != "GIT_THETA_LOG_LEVEL"}
    r = subprocess.run([*run, "--textconv", missing], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("git-theta: error: internal error (FileNotFoundError: ")
    assert "rerun with GIT_THETA_LOG_LEVEL=DEBUG for the traceback" in r.stderr
    env["GIT_THETA_LOG_LEVEL"] = "DEBUG"
    r = subprocess.run([*run, "--textconv", missing], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr


def test_a_full_disk_in_the_merge_driver_is_one_line(branches):  # noqa: F811  the fixture imported above
    """The store on a full tmpfs: the merged tensors cannot be written; git shows one line from
    the driver, not a traceback."""
    repo, path, base, ours, theirs = branches
    lfs = os.path.join(repo.cwd, ".git", "lfs")
    shutil.copytree(lfs, str(lfs) + ".saved")
    with mounted(lfs, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        shutil.copytree(str(lfs) + ".saved", lfs, dirs_exist_ok=True)
        with open(os.path.join(lfs, "filler"), "wb", buffering=0) as f:  # the rest of the space
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
        env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="average-ours-theirs")
        proc = type(repo)(repo.cwd, env)("merge", "--no-edit", "other", check=False)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.startswith("git-theta")]
        assert len(lines) == 1 and "no space left on the device" in lines[0], err
