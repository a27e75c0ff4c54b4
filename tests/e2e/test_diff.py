"""End to end: `git diff`, `git log -p`, `git show` and `git theta diff` on tracked models."""

import json
import os

import numpy as np
import pytest
import torch

from tests.helpers import lfs_objects, save, small_model


@pytest.fixture
def history(repo):
    """Three commits: a model, one layer nudged, then a tensor added and one removed."""
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    v1 = small_model(0)
    save(v1, path)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    v2 = type(v1)(v1)
    v2["layers.1.weight"] = v1["layers.1.weight"] + 0.5
    save(v2, path)
    repo("commit", "-qam", "v2")
    v3 = type(v2)(v2)
    del v3["head.weight"]
    v3["extra.bias"] = torch.ones(3)
    save(v3, path)
    repo("commit", "-qam", "v3")
    return repo, (v1, v2, v3)


def test_git_diff_shows_numbers(history):
    repo, (v1, v2, _) = history
    out = repo.out("diff", "HEAD~2", "HEAD~1")
    lines = out.splitlines()
    assert lines[0] == "diff --git-theta a/model.pt b/model.pt"
    assert lines[1].startswith("model.pt: 1 of 6 parameters changed (1 modified, 0 added, 0 removed), ")
    assert "stored by this change" in lines[1]
    old, new = v1["layers.1.weight"].double().numpy(), v2["layers.1.weight"].double().numpy()
    rel = np.linalg.norm(new - old) / np.linalg.norm(old)
    assert (
        f"rel {rel:.3e}" in lines[2]
        and "changed 100.0%" in lines[2]
        and ("dense" in lines[2] or "bitdelta" in lines[2])
    )
    assert "\033[" not in out  # piped: no color


def test_git_diff_of_working_tree_and_added_file(history):
    repo, (_, _, v3) = history
    v4 = type(v3)(v3)
    v4["embed.weight"] = v4["embed.weight"] * 2
    save(v4, os.path.join(repo.cwd, "model.pt"))
    out = repo.out("diff")
    assert "embed.weight" in out and "not stored yet" in out and "rel 1.000e+00" in out
    save(small_model(9), os.path.join(repo.cwd, "other.pt"))
    repo.theta("track", "other.pt")
    repo("add", "other.pt")
    out = repo.out("diff", "--cached", "--", "other.pt")
    assert "6 of 6 parameters changed (0 modified, 6 added, 0 removed)" in out
    os.remove(os.path.join(repo.cwd, "other.pt"))
    out = repo.out("diff", "--", "other.pt")
    assert "6 of 6 parameters changed (0 modified, 0 added, 6 removed)" in out


def test_git_log_p_and_show_on_three_commits(history):
    repo, _ = history
    log = repo.out("log", "-p", "--format=commit %s")
    chunks = log.split("commit ")[1:]
    assert [c.splitlines()[0] for c in chunks] == ["v3", "v2", "v1"]
    v3, v2, v1 = chunks
    assert "-head.weight  float32[4, 16]  dense" in v3 and "+extra.bias  float32[3]  dense" in v3
    assert "-layers.1.weight  float32[16, 16]  dense" in v2 and "+layers.1.weight  float32[16, 16]  " in v2
    assert "+git-theta pytorch checkpoint: 6 parameters" in v1
    assert sum(line.startswith("+") and not line.startswith("+++") for line in v2.splitlines()) == 1
    ext = repo.out("log", "-p", "--ext-diff", "-1", "HEAD~1")
    assert "1 of 6 parameters changed" in ext and "rel " in ext
    assert "layers.1.weight" in repo.out("show", "HEAD~1")


def test_theta_diff_json_schema(history):
    repo, _ = history
    doc = json.loads(repo.theta("diff", "HEAD~2", "HEAD", "--json").stdout)
    (f,) = doc["files"]
    assert set(f) == {
        "path",
        "old_format",
        "new_format",
        "total",
        "unchanged",
        "counts",
        "stored_bytes",
        "changes",
    }
    assert f["counts"] == {"added": 1, "removed": 1, "modified": 1} and f["unchanged"] == 4
    by_name = {c["name"]: c for c in f["changes"]}
    mod = by_name["layers.1.weight"]
    assert mod["status"] == "modified" and mod["old"]["shape"] == [16, 16]
    assert set(mod["numbers"]) == {"changed_fraction", "l2", "relative", "max_abs", "cosine"}
    assert by_name["extra.bias"]["old"] is None and by_name["head.weight"]["new"] is None


def test_theta_diff_stat_threshold_and_plot(history, tmp_path):
    repo, _ = history
    stat = repo.theta("diff", "HEAD~2", "HEAD", "--stat").stdout.decode().splitlines()
    assert stat[0].split("|")[0].strip() == "layers.1.weight" and "rel " in stat[0]
    assert [s.split("|")[0].strip() for s in stat[1:3]] == ["extra.bias", "head.weight"]
    assert stat[-1].strip().startswith("model.pt: 3 of 6 parameters changed")
    hidden = repo.theta("diff", "HEAD~2", "HEAD~1", "--threshold", "10").stdout.decode()
    assert "layers.1.weight" not in hidden and "below relative change 10 hidden" in hidden
    png = str(tmp_path / "d.png")
    repo.theta("diff", "HEAD~2", "HEAD~1", "--plot", png)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    colored = repo.theta("diff", "HEAD~2", "HEAD~1", "--color").stdout.decode()
    assert "\033[33m" in colored


def test_theta_diff_paths_and_errors(history):
    repo, _ = history
    assert repo.theta("diff", "HEAD~1", "HEAD", "--", "model.pt").stdout
    bad = repo.theta("diff", "HEAD~1", "HEAD", "--", "nope.pt", check=False)
    assert bad.returncode == 1 and "not a tracked checkpoint" in bad.stderr.decode()
    assert repo.theta("diff").stdout == b""  # clean work tree: nothing to show


def test_format_change_of_same_model(repo):
    from safetensors.torch import save_file

    repo.theta("track", "weights.bin")
    path = os.path.join(repo.cwd, "weights.bin")
    sd = small_model()
    torch.save(sd, path)
    repo("add", "-A")
    repo("commit", "-qm", "torch")
    save_file(dict(sd), path)
    repo("commit", "-qam", "safetensors")
    out = repo.out("diff", "HEAD~1", "HEAD")
    assert "0 of 6 parameters changed" in out and "format pytorch -> safetensors" in out


def stored_summaries(out: str) -> list[str]:
    """What each file's summary line says was stored (the text after the counts)."""
    return [line.rsplit("), ", 1)[1] for line in out.splitlines() if " parameters changed (" in line]


def theta_json(repo, *args) -> dict[str, dict]:
    return {f["path"]: f for f in json.loads(repo.theta("diff", *args, "--json").stdout)["files"]}


@pytest.fixture
def safetensors_repo(repo):
    """model.safetensors committed: two tensors big enough for their own objects, two packed ones."""
    repo.theta("track", "*.safetensors")
    g = torch.Generator().manual_seed(0)
    sd = {n: torch.randn(600, 600, generator=g) for n in ("a.weight", "b.weight")}
    sd |= {n: torch.randn(600, generator=g) for n in ("a.bias", "b.bias")}
    save(sd, os.path.join(repo.cwd, "model.safetensors"))
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    return repo, sd


def test_stored_bytes_and_labels_for_every_pair_of_sides(safetensors_repo):
    from git_theta.diffs.render import fmt_bytes

    repo, sd = safetensors_repo
    path = os.path.join(repo.cwd, "model.safetensors")
    objects = lfs_objects(repo.cwd)  # before: git diff itself runs the clean filter on a changed file
    sd = dict(sd, **{"a.weight": sd["a.weight"] * 1.5})
    save(sd, path)
    unstaged = repo.out("diff")  # index vs working tree: the new side is not stored
    assert stored_summaries(unstaged) == ["not stored yet"] and "  working tree  " in unstaged
    (doc,) = theta_json(repo).values()
    assert doc["stored_bytes"] is None and doc["changes"][0]["new"]["update_type"] is None
    repo("add", "model.safetensors")
    new = {oid: size for oid, size in lfs_objects(repo.cwd).items() if oid not in objects}
    assert len(new) == 1  # the changed big tensor's own object
    want = f"{fmt_bytes(sum(new.values()))} stored by this change"
    staged = repo.out("diff", "--cached")  # HEAD vs index: staged, so stored
    assert stored_summaries(staged) == [want] and "working tree" not in staged
    assert theta_json(repo, "--cached")["model.safetensors"]["stored_bytes"] == sum(new.values())
    repo("commit", "-qm", "v2")
    for args in (["HEAD~1", "HEAD"], ["HEAD~1"]):  # commit vs commit; commit vs a clean working tree
        out = repo.out("diff", *args)
        assert stored_summaries(out) == [want] and "working tree" not in out, args
        doc = theta_json(repo, *args)["model.safetensors"]
        assert doc["stored_bytes"] == sum(new.values()) and doc["changes"][0]["new"]["update_type"], args
    assert stored_summaries(repo.out("show", "--ext-diff", "--format=", "HEAD")) == [want]
    save(dict(sd, **{"b.weight": sd["b.weight"] * 2}), path)  # commit vs a modified working tree
    assert stored_summaries(repo.out("diff", "HEAD~1")) == ["not stored yet"]
    assert theta_json(repo, "HEAD~1")["model.safetensors"]["stored_bytes"] is None


def test_reshard_stores_nothing_new(safetensors_repo):
    repo, sd = safetensors_repo
    for i, names in enumerate((["a.weight", "a.bias"], ["b.weight", "b.bias"]), 1):
        save({n: sd[n] for n in names}, os.path.join(repo.cwd, f"model-0000{i}-of-00002.safetensors"))
    os.remove(os.path.join(repo.cwd, "model.safetensors"))
    objects = lfs_objects(repo.cwd)
    repo("add", "-A")
    assert lfs_objects(repo.cwd) == objects  # the same tensors: nothing stored
    nothing = "nothing new stored by this change"
    staged = repo.out("diff", "--cached")
    assert stored_summaries(staged) and set(stored_summaries(staged)) == {nothing}, staged
    assert "model-00002-of-00002.safetensors" in staged
    assert {f["stored_bytes"] for f in theta_json(repo, "--cached").values()} == {0}
    repo("commit", "-qm", "re-shard")
    for args in (["HEAD~1", "HEAD"], ["HEAD~1"], ["HEAD~1..HEAD"], ["-R", "HEAD", "HEAD~1"]):
        out = repo.out("diff", *args)
        assert stored_summaries(out) and set(stored_summaries(out)) == {nothing}, (args, out)
    for args in (["HEAD~1", "HEAD"], ["HEAD~1"]):
        assert {f["stored_bytes"] for f in theta_json(repo, *args).values()} == {0}, args
    # `git log -p` does not say which commits it compares: counted against each file's old side only
    log = repo.out("log", "-p", "--ext-diff", "--format=", "-1")
    assert "stored by this change" not in log and "new to this file" in log


def test_renamed_file_is_labelled_with_both_paths(safetensors_repo):
    repo, sd = safetensors_repo
    sd = dict(sd, **{"a.bias": sd["a.bias"] + 1})
    save(sd, os.path.join(repo.cwd, "renamed.safetensors"))
    os.remove(os.path.join(repo.cwd, "model.safetensors"))
    repo("add", "-A")
    out = repo.out("diff", "--cached", "-M")
    assert out.splitlines()[0] == "diff --git-theta a/model.safetensors b/renamed.safetensors", out
    assert out.splitlines()[1].startswith(
        "model.safetensors -> renamed.safetensors: 1 of 4 parameters changed"
    )
