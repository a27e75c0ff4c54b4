"""The man pages: committed = generated from the CLI, one per command, shown by `git theta --help` once installed."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from git_theta import manpages
from git_theta.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN1 = os.path.join(ROOT, "man", "man1")
NAME_LINE = "git-theta - Version machine-learning checkpoints in git"


def _committed() -> dict[str, str]:
    if not os.path.isdir(MAN1):
        return {}
    out = {}
    for name in sorted(os.listdir(MAN1)):
        with open(os.path.join(MAN1, name), encoding="utf-8") as f:
            out[name] = f.read()
    return out


def test_committed_pages_match_the_cli_help():
    committed, generated = _committed(), manpages.render()
    stale = sorted(n for n in set(committed) | set(generated) if committed.get(n) != generated.get(n))
    assert not stale, f"man/man1 is out of date with the CLI's help ({', '.join(stale)}): run `make man`"


def test_every_command_has_a_page_listed_on_the_main_page():
    committed = _committed()
    main_page = committed.get("git-theta.1", "")
    for name, cmd in cli_main.commands.items():
        if cmd.hidden:
            continue
        assert f"git-theta-{name}.1" in committed, f"no man page for `git theta {name}`: run `make man`"
        assert f"\\fBgit\\-theta\\-{name.replace('-', chr(92) + '-')}\\fR(1)" in main_page
    for opt in ("--update-type", "--update-data"):
        assert opt.replace("-", "\\-") in committed["git-theta-add.1"]


def _man() -> str:
    man = shutil.which("man")
    if man is None:
        pytest.skip("no `man` on this machine")
    return man


def test_pages_render_without_groff_warnings():
    _man()
    for name in manpages.render():
        proc = subprocess.run(
            ["man", "--warnings=all", "-l", os.path.join(MAN1, name)],
            env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "TERM": "dumb"},
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and not proc.stderr, (name, proc.stderr)
        assert proc.stdout.lstrip().startswith(name[:-2].upper() + "(1)"), (name, proc.stdout[:200])


def _copy_project(dest: str) -> str:
    """The files a pip install of this checkout reads, copied so the build leaves the checkout alone."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    os.makedirs(dest)
    for name in ("setup.py", "README.md", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), dest)
    for name in ("git_theta", "man"):
        if os.path.isdir(os.path.join(ROOT, name)):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(dest, name), ignore=ignore)
    return dest


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_git_theta_help_shows_the_installed_page(tmp_path, editable):
    """`pip install` puts the pages in <prefix>/share/man; with <prefix>/bin on PATH man finds them."""
    _man()
    src = _copy_project(str(tmp_path / "src"))
    prefix = tmp_path / "prefix"
    # --ignore-installed: with --prefix alone pip first uninstalls the running environment's git-theta
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--ignore-installed",
        "--prefix",
        str(prefix),
    ]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.append("--no-build-isolation")  # offline and faster; else pip fetches setuptools itself
    cmd += ["-e", src] if editable else [src]
    subprocess.run(cmd, check=True, capture_output=True, cwd=tmp_path)
    assert (prefix / "share" / "man" / "man1" / "git-theta.1").is_file()
    # PATH holds only this prefix's bin and git's and man's folders, so no other install answers
    path = [str(prefix / "bin"), os.path.dirname(shutil.which("git")), os.path.dirname(_man())]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MAN", "XDG_"))}
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        PATH=os.pathsep.join(dict.fromkeys(path)),
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        MANPAGER="cat",
        PAGER="cat",
        TERM="dumb",
    )
    proc = subprocess.run(["git", "theta", "--help"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "NAME" in text and NAME_LINE in text, proc.stdout[:500]
    assert "git-theta-track(1)" in text
