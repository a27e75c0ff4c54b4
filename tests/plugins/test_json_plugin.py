"""The example JSON format plug-in installs into a clean venv and works with git."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, Git


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A clean virtual environment with git-theta and the plug-in installed by pip (no torch)."""
    path = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(
        [*pip, ROOT, os.path.join(ROOT, "plugins", "json-checkpoint")], check=True, capture_output=True
    )
    return path


def test_json_checkpoints_through_git(venv, repo):
    env = dict(repo.env, PATH=f"{venv / 'bin'}{os.pathsep}{repo.env['PATH']}")
    g = Git(repo.cwd, env)
    g.theta("install")  # this environment's drivers, by absolute path, for git
    assert "json" in g.theta("formats").stdout.decode()
    g.theta("track", "weights.json")
    path = os.path.join(repo.cwd, "weights.json")
    v1 = {
        "w": {"dtype": "float32", "shape": [2, 2], "values": [0.5, 1.0, -2.0, "nan"]},
        "n": {"dtype": "int64", "shape": [3], "values": [1, 2, 3]},
    }
    with open(path, "w") as f:
        json.dump(v1, f)
    g("add", "-A")
    g("commit", "-qm", "v1")
    assert json.loads(g.out("show", "HEAD:weights.json"))["checkpoint"]["format"] == "json"
    v2 = json.loads(json.dumps(v1))
    v2["n"]["values"] = [4, 5, 6]
    with open(path, "w") as f:
        json.dump(v2, f)
    g("commit", "-qam", "v2")
    g("checkout", "-q", "HEAD~1")
    back = json.load(open(path))
    assert (
        back["n"]["values"] == [1, 2, 3]
        and back["w"]["values"][:3] == [0.5, 1.0, -2.0]
        and back["w"]["values"][3] == "nan"
    )
    assert g.status() == ""
