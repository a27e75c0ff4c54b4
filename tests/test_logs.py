"""GIT_THETA_LOG_LEVEL decides what reaches stderr; below it, nothing is formatted or imported."""

import os
import subprocess
import sys

import pytest

_SCRIPT = """
import sys
from git_theta.logs import get_logger
import git_theta.commands.pre_push  # the hook's imports
log = get_logger("git_theta.test")
log.debug("a debug line %d", 1)
log.info("a info line %d", 2)
print("logging imported" if "logging" in sys.modules else "logging not imported")
log.warning("a warning line %d", 3)
"""


def _run(level: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "GIT_THETA_LOG_LEVEL"}
    if level is not None:
        env["GIT_THETA_LOG_LEVEL"] = level
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True
    )


def test_by_default_only_warnings_show_and_nothing_below_imports_logging():
    proc = _run(None)
    assert proc.stdout.strip() == "logging not imported"
    assert "WARNING git_theta.test: a warning line 3" in proc.stderr
    assert "a info line" not in proc.stderr and "a debug line" not in proc.stderr


@pytest.mark.parametrize(
    "level, shown",
    [
        ("info", ["info", "warning"]),
        ("DEBUG", ["debug", "info", "warning"]),
        ("10", ["debug", "info", "warning"]),
        ("error", []),
    ],
)
def test_the_level_is_read_from_the_environment(level, shown):
    proc = _run(level)
    for name in ("debug", "info", "warning"):
        assert (f"a {name} line" in proc.stderr) == (name in shown), proc.stderr
    assert proc.stderr.count("git-theta[") == len(shown)


def test_an_unknown_level_means_warning_and_says_so_once():
    proc = _run("loud")
    assert "a warning line" in proc.stderr and "a info line" not in proc.stderr
    assert proc.stderr.count("GIT_THETA_LOG_LEVEL='loud' is not one of: DEBUG") == 1, proc.stderr
