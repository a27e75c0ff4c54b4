"""Run git and answer questions about the repository (root, git dirs, blobs, config)."""

import os
import subprocess

from git_theta.errors import ThetaError

ZERO = "0" * 40  # git's object name for "none" (a new or deleted ref, a missing side of a diff)

_started: dict[tuple, subprocess.Popen] = {}


def start(args: list[str], cwd: str, input: bytes = b"") -> None:
    """Start `git ARGS` now; the run() or config_list() asking the same (args, cwd, input) later
    takes its answer. For questions a short process will ask anyway: they run while it works
    (the pre-push hook asks three at once while it loads its modules)."""
    key = (tuple(args), cwd, input)
    if key not in _started:
        proc = subprocess.Popen(
            ["git", *args], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            proc.stdin.write(input)  # a few lines: within the pipe's buffer
            proc.stdin.close()
        except OSError:
            pass
        proc.stdin = None  # closed: communicate() only reads
        _started[key] = proc


def _git(args: list[str], cwd: str | None, input: bytes | None = None, env=None):
    """`git ARGS` completed: the one start() began, else run now."""
    proc = _started.pop((tuple(args), cwd, input or b""), None) if env is None else None
    if proc is None:
        return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, env=env)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(
    args: list[str], cwd: str | None = None, input: bytes | None = None, check: bool = True, env=None
) -> bytes:
    """Run `git ARGS` and return stdout; raise ThetaError with git's message on failure."""
    proc = _git(args, cwd, input, env)
    if check and proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ThetaError(f"git {args[0]} failed: {msg[-1] if msg else f'exit code {proc.returncode}'}")
    return proc.stdout


_revs: dict[tuple[str, str], str | None] = {}


def _rev_parse(cwd: str, flag: str) -> str | None:
    """`git rev-parse FLAG` in `cwd`, remembered for this process (see prime)."""
    if (cwd, flag) not in _revs:
        proc = subprocess.run(["git", "rev-parse", flag], cwd=cwd, capture_output=True)
        _revs[cwd, flag] = proc.stdout.decode().strip() if proc.returncode == 0 else None
    return _revs[cwd, flag]


def prime(names: list[str], cwd: str | None = None) -> None:
    """Ask git for the work tree's top, the common git dir and git_path() of `names` in one
    call, for the calls that follow (a filter process starts with ~6 such questions, 3-5 ms
    each); nothing is remembered when git refuses (outside a work tree: each asks on its own)."""
    where = os.path.abspath(cwd or os.getcwd())
    flags = ["--show-toplevel", "--git-common-dir"]
    proc = subprocess.run(
        ["git", "rev-parse", *flags] + [a for name in names for a in ("--git-path", name)],
        cwd=where,
        capture_output=True,
    )
    lines = proc.stdout.decode().splitlines()
    if proc.returncode != 0 or len(lines) != len(flags) + len(names):
        return
    for flag, line in zip(flags, lines):
        _revs[where, flag] = line.strip()
    for name, line in zip(names, lines[len(flags) :]):
        _paths[where, name] = os.path.normpath(os.path.join(where, line.strip()))


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


_snapshots: dict[str, dict[str, str]] | None = None  # cwd -> git config, once cache_config() ran


def cache_config() -> None:
    """From now on read git config once per folder for this process (`git config --list`)
    instead of once per key: for a filter process, which lives as long as one git command and
    asked ~6 keys per checkout, 3-5 ms each. Commands that write config do not call this."""
    global _snapshots
    if _snapshots is None:
        _snapshots = {}


def config_key(key: str) -> str:
    """A key as `git config --list` prints it: section and name in lower case, subsection as is."""
    section, _, rest = key.partition(".")
    sub, dot, name = rest.rpartition(".")
    return f"{section.lower()}.{sub}{dot}{name.lower()}" if sub else f"{section.lower()}.{name.lower()}"


def config_list(args: list[str], cwd: str | None = None) -> dict[str, str] | None:
    """`git config -z ARGS` (a listing: --list, --get-regexp) as key -> last value, keys as git
    prints them (see config_key); None when git finds none or refuses (no such file or blob)."""
    proc = _git(["config", "-z", *args], cwd)
    if proc.returncode != 0:
        return None
    values = {}
    for item in proc.stdout.split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8", "replace").partition("\n")
            values[key] = value
    return values


def config_snapshot(cwd: str | None = None) -> dict[str, str] | None:
    """Every git config key's last value in `cwd` (as `git config --get` gives it), or None
    when snapshots are off or git cannot list them."""
    if _snapshots is None:
        return None
    where = os.path.abspath(cwd or os.getcwd())
    if where not in _snapshots:
        values = config_list(["--list"], where)
        if values is None:
            return None
        _snapshots[where] = values
    return _snapshots[where]


def config_get(key: str, cwd: str | None = None) -> str | None:
    """`git config --get KEY` (None when unset)."""
    values = config_snapshot(cwd)
    if values is not None:
        value = values.get(config_key(key))
        return value.strip() if value is not None else None
    proc = subprocess.run(["git", "config", "--get", key], cwd=cwd, capture_output=True)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def config_all(key: str, cwd: str | None = None) -> list[str]:
    """`git config --get-all KEY`: every value of a multi-valued key, in order (none when unset)."""
    proc = _git(["config", "-z", "--get-all", key], cwd)
    return (
        [v for v in proc.stdout.decode("utf-8", "replace").split("\0") if v] if proc.returncode == 0 else []
    )


def lfs_available() -> bool:
    """True when the git-lfs tool can be run."""
    import shutil  # on use: 3 ms of every hook's imports (bz2, lzma, ...)

    if shutil.which("git-lfs") is None:
        return False
    return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0


def require_lfs() -> None:
    if not lfs_available():
        raise ThetaError(
            "git-lfs is not installed: install it (e.g. `apt-get install git-lfs`) and run `git theta install` again"
        )
