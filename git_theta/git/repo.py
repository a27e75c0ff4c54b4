"""Run git and answer questions about the repository (root, git dirs, blobs, config)."""

import os
import shutil
import subprocess
from functools import lru_cache

from git_theta.errors import ThetaError


def run(
    args: list[str], cwd: str | None = None, input: bytes | None = None, check: bool = True, env=None
) -> bytes:
    """Run `git ARGS` and return stdout; raise ThetaError with git's message on failure."""
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env)
    if check and proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ThetaError(f"git {args[0]} failed: {msg[-1] if msg else f'exit code {proc.returncode}'}")
    return proc.stdout


@lru_cache(maxsize=16)
def _rev_parse(cwd: str, flag: str) -> str | None:
    proc = subprocess.run(["git", "rev-parse", flag], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode().strip()


def root(cwd: str | None = None) -> str:
    """The work tree's top folder; a clear error outside a repository."""
    top = _rev_parse(os.path.abspath(cwd or os.getcwd()), "--show-toplevel")
    if not top:
        raise ThetaError("not a git repository (run `git init` first, or cd into your repository)")
    return top


def common_dir(cwd: str | None = None) -> str:
    """The repository's common git dir (shared by worktrees): where LFS objects live."""
    where = os.path.abspath(cwd or os.getcwd())
    path = _rev_parse(where, "--git-common-dir")
    if not path:
        raise ThetaError("not a git repository (run `git init` first, or cd into your repository)")
    return os.path.normpath(os.path.join(where, path))


def git_path(name: str, cwd: str | None = None) -> str:
    """`git rev-parse --git-path NAME` as an absolute path (honours core.hooksPath)."""
    return git_paths([name], cwd)[0]


_paths: dict[tuple[str, str], str] = {}


def git_paths(names: list[str], cwd: str | None = None) -> list[str]:
    """git_path() of several names in one git call, remembered for this process (a filter
    process asked git for the same few paths ~10 times per checkout, ~7 ms each)."""
    where = os.path.abspath(cwd or os.getcwd())
    todo = [name for name in dict.fromkeys(names) if (where, name) not in _paths]
    if todo:
        out = run(["rev-parse"] + [a for name in todo for a in ("--git-path", name)], cwd=where)
        lines = out.decode().splitlines()
        if len(lines) != len(todo):
            raise ThetaError(f"git rev-parse gave {len(lines)} paths for {len(todo)} names")
        for name, line in zip(todo, lines):
            _paths[where, name] = os.path.normpath(os.path.join(where, line.strip()))
    return [_paths[where, name] for name in names]


def is_commit(rev: str, cwd: str | None = None) -> bool:
    """True when `rev` names a commit (HEAD is False in a repository without commits)."""
    return run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=cwd, check=False) != b""


def read_blob(rev_path: str, cwd: str | None = None) -> bytes | None:
    """Contents of `REV:PATH` (or `:PATH` for the index), or None when it does not exist."""
    proc = subprocess.run(["git", "cat-file", "blob", rev_path], cwd=cwd, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def config_get(key: str, cwd: str | None = None) -> str | None:
    proc = subprocess.run(["git", "config", "--get", key], cwd=cwd, capture_output=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def lfs_available() -> bool:
    """True when the git-lfs tool can be run."""
    if shutil.which("git-lfs") is None:
        return False
    return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0


def require_lfs() -> None:
    if not lfs_available():
        raise ThetaError(
            "git-lfs is not installed: install it (e.g. `apt-get install git-lfs`) and run `git theta install` again"
        )
