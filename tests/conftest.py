"""Shared fixtures: an isolated git environment (HOME, config) and helpers to drive real git."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDENTITY = {
    "GIT_AUTHOR_NAME": "Theta Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Theta Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


@pytest.fixture(autouse=True, scope="session")
def _git_identity():
    """Commits made in the test process itself (git_theta.save, save_to_git) need an identity,
    and a fresh machine's git config has none; commands run through git_env get theirs from its
    HOME (it drops these variables)."""
    patch = pytest.MonkeyPatch()
    for key, value in IDENTITY.items():
        patch.setenv(key, value)
    yield
    patch.undo()


class Git:
    """Runs real git commands in one repository with an isolated environment."""

    def __init__(self, cwd: str, env: dict):
        self.cwd, self.env = cwd, env

    def __call__(self, *args, check=True, input=None, cwd=None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.cwd, env=self.env, input=input, capture_output=True
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
        return proc

    def out(self, *args, **kw) -> str:
        return self(*args, **kw).stdout.decode()

    def theta(self, *args, check=True, cwd=None) -> subprocess.CompletedProcess:
        return self("theta", *args, check=check, cwd=cwd)

    def status(self) -> str:
        return self.out("status", "--porcelain")

    def at(self, cwd: str) -> "Git":
        return Git(cwd, self.env)


@pytest.fixture
def git_env(tmp_path):
    """Environment with its own HOME: git identity set, git-lfs and git-theta installed there."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env.update(
        HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_THETA_PROGRESS="0", GIT_THETA_MERGE_INTERACTIVE="0"
    )
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for key, value in (
        ("user.name", "Theta Test"),
        ("user.email", "test@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, capture_output=True)
    subprocess.run(["git", "theta", "install"], env=env, check=True, capture_output=True)
    return env


@pytest.fixture
def repo(tmp_path, git_env) -> Git:
    """A fresh repository (work tree at tmp_path/repo)."""
    path = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(path)], env=git_env, check=True)
    return Git(str(path), git_env)


@pytest.fixture
def bare_remote(tmp_path, git_env) -> str:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], env=git_env, check=True)
    return str(path)


@pytest.fixture
def lfs_server(tmp_path, git_env):
    """A real HTTP Git LFS server on 127.0.0.1 (giftless); git's credential helper knows the password."""
    from tests.lfs_server import LfsServer, credential_helper

    server = LfsServer(str(tmp_path / "lfs-server")).start()
    subprocess.run(
        ["git", "config", "--global", "credential.helper", credential_helper()], env=git_env, check=True
    )
    git_env["GIT_TERMINAL_PROMPT"] = "0"
    yield server
    server.stop()


def pytest_report_header(config):
    lfs = shutil.which("git-lfs")
    return f"git-lfs: {lfs or 'MISSING'}"


class FailingSink:
    """A sink whose write number `fail_at` (from 1) raises OSError(`message`): a disk filling up."""

    def __init__(self, fail_at: int, message: str = "No space left on device"):
        self.n, self.fail_at, self.message = 0, fail_at, message

    def write(self, data) -> int:
        self.n += 1
        if self.n >= self.fail_at:
            raise OSError(self.message)
        return len(memoryview(data))
