"""End to end on a machine set up like a user's: block-buffered Python, no venv on PATH, no torch.

Our own machines set PYTHONUNBUFFERED=1 and PYTHONDONTWRITEBYTECODE=1 everywhere, and that hid a
hang of the long-running filter (its handshake sat in a block-buffered stdout while git waited).
"""

import os
import shutil
import subprocess
import sys

import numpy as np

from git_theta.git import programs
from tests.conftest import Git

TIMEOUT = 120  # a hang fails the test instead of the whole CI run


def _user_env(env: dict, path: str | None = None) -> dict:
    out = {k: v for k, v in env.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    if path is not None:
        out["PATH"] = path
    return out


def _system_path() -> str:
    """A PATH with git and git-lfs but without this installation's scripts."""
    folders = []
    for tool in ("git", "git-lfs", "sh"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed for this test"
        folder = os.path.dirname(found)
        if folder not in folders:
            folders.append(folder)
    scripts = programs.scripts_dir()
    assert scripts and scripts not in folders, "git-theta's scripts share a folder with git: cannot test"
    return os.pathsep.join(folders)


def _run(args, cwd, env, check=True):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    return proc


def _model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embed.weight": rng.standard_normal((64, 32), dtype=np.float32),
        "layers.0.weight": rng.standard_normal((32, 32), dtype=np.float32),
        "layers.0.bias": np.zeros(32, np.float32),
    }


def _write(path: str, sd: dict) -> None:
    from safetensors.numpy import save_file

    save_file(sd, path)


def _read(path: str) -> dict:
    from safetensors.numpy import load_file

    return load_file(path)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a
    )


def test_filter_process_with_block_buffered_stdout(repo, bare_remote, tmp_path):
    """git add, checkout and clone through the real `git-theta-filter process`, PYTHONUNBUFFERED unset."""
    env = _user_env(repo.env)
    g = Git(repo.cwd, env)
    assert g.out("config", "filter.theta.process").strip().endswith("git-theta-filter process")
    _run(["git", "theta", "track", "model.safetensors"], repo.cwd, env)
    path = os.path.join(repo.cwd, "model.safetensors")
    v1, v2 = _model(0), _model(1)
    _write(path, v1)
    _run(["git", "add", "model.safetensors"], repo.cwd, env)
    _run(["git", "commit", "-qm", "v1"], repo.cwd, env)
    assert g.out("show", "HEAD:model.safetensors").lstrip().startswith("{")  # stored as metadata
    _write(path, v2)
    _run(["git", "add", "model.safetensors"], repo.cwd, env)
    _run(["git", "commit", "-qm", "v2"], repo.cwd, env)
    _run(["git", "checkout", "-q", "HEAD~1", "--", "model.safetensors"], repo.cwd, env)
    assert _same(_read(path), v1)
    _run(["git", "checkout", "-q", "HEAD", "--", "model.safetensors"], repo.cwd, env)
    assert _same(_read(path), v2)
    _run(["git", "remote", "add", "origin", bare_remote], repo.cwd, env)
    _run(["git", "push", "-q", "origin", "main"], repo.cwd, env)
    clone = str(tmp_path / "clone")
    _run(["git", "clone", "-q", bare_remote, clone], str(tmp_path), env)
    assert _same(_read(os.path.join(clone, "model.safetensors")), v2)
    assert Git(clone, env).status() == ""


def test_drivers_and_hooks_found_without_the_scripts_on_path(tmp_path, git_env, bare_remote):
    """`git theta install` run from a virtual environment that is not on PATH: plain git still
    finds the filter, diff and merge drivers and the hooks (git status used to fail with "the
    remote end hung up unexpectedly")."""
    scripts = programs.scripts_dir()
    home = tmp_path / "user-home"
    home.mkdir()
    env = _user_env(dict(git_env, HOME=str(home)), path=_system_path())
    for key, value in (
        ("user.name", "U"),
        ("user.email", "u@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        _run(["git", "config", "--global", key, value], str(tmp_path), env)
    _run(["git", "lfs", "install", "--skip-repo"], str(tmp_path), env)
    _run([os.path.join(scripts, "git-theta"), "install"], str(tmp_path), env)
    process = _run(["git", "config", "--global", "filter.theta.process"], str(tmp_path), env).stdout.decode()
    assert process.strip() == f"{os.path.join(scripts, 'git-theta-filter')} process"

    work = str(tmp_path / "work")
    _run(["git", "init", "-q", work], str(tmp_path), env)
    _run([os.path.join(scripts, "git-theta"), "track", "model.safetensors"], work, env)
    path = os.path.join(work, "model.safetensors")
    v1, v2 = _model(0), _model(1)
    _write(path, v1)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "v1"], work, env)
    _write(path, v2)
    assert _run(["git", "status", "--porcelain"], work, env).stdout.decode().strip() == "M model.safetensors"
    diff = _run(["git", "diff", "--", "model.safetensors"], work, env).stdout.decode()
    assert "parameters changed" in diff
    _run(["git", "commit", "-qam", "v2"], work, env)
    _run(["git", "checkout", "-q", "HEAD~1", "--", "model.safetensors"], work, env)
    assert _same(_read(path), v1)
    _run(["git", "checkout", "-q", "HEAD", "--", "model.safetensors"], work, env)
    _run(["git", "remote", "add", "origin", bare_remote], work, env)
    push = _run(["git", "push", "-q", "origin", "main"], work, env)  # through our pre-push hook
    assert b"not installed" not in push.stderr
    clone = str(tmp_path / "clone")
    _run(["git", "clone", "-q", bare_remote, clone], str(tmp_path), env)
    assert _same(_read(os.path.join(clone, "model.safetensors")), v2)


def test_hook_names_the_fix_when_git_theta_is_gone(repo, tmp_path):
    """A hook written by an installation that has since been removed says so in one line."""
    from git_theta.git import hooks

    text = hooks.hook_text("pre-push").replace(programs.command("git-theta"), "/nonexistent/bin/git-theta")
    hook = tmp_path / "pre-push"
    hook.write_text(text)
    hook.chmod(0o755)
    proc = subprocess.run(
        [str(hook), "origin", "url"], input=b"", env=dict(repo.env, PATH=_system_path()), capture_output=True
    )
    assert proc.returncode == 2
    assert b"git-theta is not installed" in proc.stderr and b"/nonexistent/bin/git-theta" in proc.stderr


_NO_TORCH = """
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch' (blocked by the test)")


sys.meta_path.insert(0, _NoTorch())
"""


def test_core_works_without_torch(repo, tmp_path):
    """git add, diff, checkout and clone of PyTorch and safetensors checkpoints with torch not
    importable in any git-theta process: the core needs no torch."""
    import torch

    block = tmp_path / "no-torch"
    block.mkdir()
    (block / "sitecustomize.py").write_text(_NO_TORCH)
    paths = [str(block)] + ([repo.env["PYTHONPATH"]] if repo.env.get("PYTHONPATH") else [])
    env = _user_env(dict(repo.env, PYTHONPATH=os.pathsep.join(paths)))
    probe = _run([sys.executable, "-c", "import torch"], repo.cwd, env, check=False)
    assert probe.returncode != 0 and b"blocked by the test" in probe.stderr
    g = Git(repo.cwd, env)
    g.theta("track", "*.pt", "*.safetensors")
    v1, v2 = _model(0), _model(1)
    torch.save({k: torch.from_numpy(v) for k, v in v1.items()}, os.path.join(repo.cwd, "model.pt"))
    _write(os.path.join(repo.cwd, "model.safetensors"), v1)
    g("add", "-A")
    g("commit", "-qm", "v1")
    torch.save({k: torch.from_numpy(v) for k, v in v2.items()}, os.path.join(repo.cwd, "model.pt"))
    _write(os.path.join(repo.cwd, "model.safetensors"), v2)
    assert "parameters changed" in g.out("diff")
    g("commit", "-qam", "v2")
    g("checkout", "-q", "HEAD~1", "--", ".")
    back = torch.load(os.path.join(repo.cwd, "model.pt"), weights_only=True)
    assert _same({k: t.numpy() for k, t in back.items()}, v1)
    assert _same(_read(os.path.join(repo.cwd, "model.safetensors")), v1)
    assert "model.pt" in g.out("theta", "ls-files")
