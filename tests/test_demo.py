"""`make demo` as a user runs it: no torch, no venv on PATH, block-buffered output; the repo is kept."""

import os
import re
import subprocess
import sys

from git_theta import demo
from tests.conftest import Git

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Loaded by every Python process of the run (the demo, git-theta, its filter): logs and refuses torch.
NO_TORCH = """
import importlib.abc, os, sys

class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            with open(os.environ["NO_TORCH_LOG"], "a") as log:
                log.write(" ".join(sys.argv) + "\\n")
            raise ImportError("torch is blocked by tests/test_demo.py")

sys.meta_path.insert(0, _NoTorch())
"""

BLOCKS = [
    "A GPT-2-shaped model (tiny:",
    "The history:",
    "Git itself keeps only metadata for model.safetensors",
    "`git diff HEAD~1 HEAD -- model.safetensors`",
    "Both commits and a fresh clone",
    "What each commit stored",
    "The repository is kept",
]


def _user_env(tmp_path) -> dict[str, str]:
    """A fresh HOME and TMPDIR, no PYTHONUNBUFFERED, and PATH without this interpreter's bin folder."""
    blocker = tmp_path / "no-torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TORCH)
    bindir = os.path.dirname(sys.executable)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "XDG_")) and k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and os.path.abspath(p) != bindir]
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    env.update(
        PATH=os.pathsep.join(path),
        HOME=str(tmp_path / "home"),
        TMPDIR=str(tmp_path / "tmp"),
        PYTHONPATH=os.pathsep.join([str(blocker), ROOT, *filter(None, [env.get("PYTHONPATH")])]),
        NO_TORCH_LOG=str(tmp_path / "torch-imports.log"),
    )
    return env


def test_demo_runs_without_torch_or_the_venv_on_path_and_keeps_its_repository(tmp_path):
    env = _user_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True)
    assert probe.returncode != 0 and os.path.exists(env["NO_TORCH_LOG"]), "the torch blocker is not active"
    os.remove(env["NO_TORCH_LOG"])

    proc = subprocess.run(
        [sys.executable, "-m", "git_theta.demo", "--scale", "tiny"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not os.path.exists(env["NO_TORCH_LOG"]), "torch imported by: " + open(env["NO_TORCH_LOG"]).read()
    out = proc.stdout

    # each block opens with one line saying what it shows, in this order, and has something under it
    explanations = [line for line in out.splitlines() if line.startswith("# ")]
    assert len(explanations) == len(BLOCKS), out
    for line, start in zip(explanations, BLOCKS):
        assert line[2:].startswith(start), (line, start)
    for block in out.split("\n# ")[1:]:
        assert len(block.strip().splitlines()) >= 2, block
    assert out.count("28 tensors identical, bit for bit") == 3
    # stored whole or as a change, as the storage policy decides for a change of every element
    assert re.search(r"^  modified h\.1\.mlp\.c_fc\.weight .* (dense|bitdelta|sparse) ", out, re.M)

    # the repository is kept where the first block says, and `rm -rf` names its folder
    repo = out.split("kept at:\n", 1)[1].splitlines()[0]
    work = re.search(r"^rm -rf (\S+)$", out, re.M).group(1)
    assert repo == os.path.join(work, "repo") and work.startswith(env["TMPDIR"])
    assert os.path.isdir(os.path.join(repo, ".git"))

    # the printed command to look around works from this PATH (without git-theta) and HOME
    look = re.search(r"^cd .* git log -p --ext-diff$", out, re.M).group(0)
    shown = subprocess.run(["bash", "-c", look], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "28 of 28 parameters" in shown.stdout, shown.stdout + shown.stderr

    # it checks out from a user's own HOME (git-theta installed in the repository), bit for bit
    from safetensors.numpy import load_file

    user = dict(env, PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"])
    git = Git(repo, user)
    assert git.status() == ""
    git("checkout", "-q", "HEAD~1")
    v1 = demo.gpt2_state_dict("tiny")
    assert demo.same_bits(load_file(os.path.join(repo, "model.safetensors")), v1)
    assert demo.same_bits(
        load_file(os.path.join(work, "clone", "model.safetensors")), demo.fine_tune_last_blocks(v1)
    )
