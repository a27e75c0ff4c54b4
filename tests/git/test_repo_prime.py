"""The filter's start-up questions to git, asked once: prime() and the config snapshot."""

import os
import subprocess

from git_theta.filter import direct
from git_theta.git import hooks, repo


def test_prime_answers_what_separate_calls_would(tmp_path, monkeypatch):
    top = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    (top / "sub").mkdir()
    subprocess.run(["git", "config", "core.hooksPath", "my-hooks"], cwd=top, check=True)
    names = [f"hooks/{name}" for name in hooks.NAMES] + [direct.NOTE, "index"]
    separate = {name: repo.git_path(name, str(top / "sub")) for name in names}
    monkeypatch.setattr(repo, "_paths", {})
    monkeypatch.setattr(repo, "_revs", {})
    repo.prime(names, str(top / "sub"))
    calls = []
    monkeypatch.setattr(repo, "run", lambda *a, **k: calls.append(a))  # nothing may ask git again
    monkeypatch.setattr(repo.subprocess, "run", lambda *a, **k: calls.append(a))
    assert {name: repo.git_path(name, str(top / "sub")) for name in names} == separate
    assert separate["hooks/pre-push"].endswith(os.path.join("my-hooks", "pre-push"))
    assert repo.root(str(top / "sub")) == str(top.resolve())
    assert repo.common_dir(str(top / "sub")) == str((top / ".git").resolve())
    assert calls == []


def test_prime_outside_a_work_tree_leaves_every_question_to_git(tmp_path, monkeypatch):
    bare = tmp_path / "b.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    monkeypatch.setattr(repo, "_paths", {})
    monkeypatch.setattr(repo, "_revs", {})
    repo.prime(["index"], str(bare))  # --show-toplevel fails in a bare repository
    assert repo._paths == {} and repo._revs == {}
    assert repo.git_path("index", str(bare)) == str(bare / "index")


def test_config_snapshot_gives_what_git_config_get_gives(tmp_path, monkeypatch):
    top = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(top)], check=True)
    for key, value in [
        ("remote.My.Origin.url", "/x/y"),
        ("lfs.url", " spaced "),
        ("theta.storagePolicy", "smallest"),
        ("lfs.url", "second"),
    ]:
        subprocess.run(["git", "config", "--add", key, value], cwd=top, check=True)
    keys = ["remote.My.Origin.URL", "REMOTE.My.Origin.url", "lfs.url", "theta.storagepolicy", "lfs.missing"]
    monkeypatch.setattr(repo, "_snapshots", None)
    direct_answers = {key: repo.config_get(key, str(top)) for key in keys}
    repo.cache_config()
    try:
        assert {key: repo.config_get(key, str(top)) for key in keys} == direct_answers
        assert direct_answers["remote.My.Origin.URL"] == "/x/y" and direct_answers["lfs.url"] == "second"
        assert direct_answers["lfs.missing"] is None
    finally:
        monkeypatch.setattr(repo, "_snapshots", None)
