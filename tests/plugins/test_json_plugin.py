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


SAVE = """
import json, sys, numpy as np, git_theta
v1 = {"w": np.array([[0.5, 1.0], [-2.0, np.nan]], np.float32), "head": {"n": np.arange(3)}}
first = git_theta.save(v1, "weights.json", "v1")
v2 = {"w": v1["w"] * 2, "head": {"n": np.arange(3) + 4}}
second = git_theta.save(v2, "weights.json", "v2", materialize=True)
back = git_theta.load("weights.json", first, framework="numpy", nested=True)
print(json.dumps({"w": back["w"].tolist(), "n": back["head"]["n"].tolist(), "dtype": str(back["w"].dtype)}))
"""


def test_python_api_saves_to_a_plug_in_format(venv, repo):
    """git_theta.save lays out a new .json file by the plug-in format's own methods (no torch here)."""
    env = dict(repo.env, PATH=f"{venv / 'bin'}{os.pathsep}{repo.env['PATH']}")
    g = Git(repo.cwd, env)
    g.theta("install")
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SAVE], cwd=repo.cwd, env=env, capture_output=True, check=True
    )
    back = json.loads(proc.stdout)
    assert back["n"] == [0, 1, 2] and back["w"][0] == [0.5, 1.0] and back["dtype"] == "float32"
    assert json.loads(g.out("show", "HEAD:weights.json"))["checkpoint"]["format"] == "json"
    written = json.load(open(os.path.join(repo.cwd, "weights.json")))  # materialized by the plug-in's writer
    assert written["head/n"]["values"] == [4, 5, 6] and written["w"]["values"][:3] == [1.0, 2.0, -4.0]
    assert g.status() == ""
