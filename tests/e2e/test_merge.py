"""End to end: `git merge` of model branches with strategies, rules, manual and interactive modes."""

import os

import numpy as np
import pexpect
import pytest
import torch

from tests.helpers import load, save, small_model


def merge_on_terminal(repo):
    """`git merge other` in a pseudo-terminal, interactive resolver on."""
    env = dict(repo.env, GIT_THETA_MERGE_INTERACTIVE="1", TERM="dumb")
    return pexpect.spawn(
        "git", ["merge", "--no-edit", "other"], cwd=repo.cwd, env=env, timeout=60, encoding="utf-8"
    )


@pytest.fixture
def branches(repo):
    """main and `other` both change layers.0.weight; main changes head, other changes embed."""
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    base = small_model(0)
    save(base, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    theirs = type(base)(base)
    theirs["layers.0.weight"] = base["layers.0.weight"] + 1
    theirs["embed.weight"] = base["embed.weight"] * 2
    save(theirs, path)
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    ours = type(base)(base)
    ours["layers.0.weight"] = base["layers.0.weight"] - 3
    ours["head.weight"] = base["head.weight"] + 5
    save(ours, path)
    repo("commit", "-qam", "ours")
    return repo, path, base, ours, theirs


def test_conflict_without_rule_lists_parameters_and_merges_nothing(branches):
    repo, path, base, ours, theirs = branches
    proc = repo("merge", "--no-edit", "other", check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "layers.0.weight (both-modified)" in err and "GIT_THETA_MERGE_STRATEGY" in err
    assert "embed.weight" not in err.split("changed on both sides")[1]
    assert torch.equal(load(path)["layers.0.weight"], ours["layers.0.weight"])  # ours left in place
    repo("merge", "--abort")
    assert repo.status() == ""


def test_strategy_from_environment(branches):
    repo, path, base, ours, theirs = branches
    env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="task-arithmetic:merge_lambda=0.5")
    type(repo)(repo.cwd, env)("merge", "--no-edit", "other")
    merged = load(path)
    o, a, b = (x["layers.0.weight"].double().numpy() for x in (base, ours, theirs))
    np.testing.assert_array_equal(
        merged["layers.0.weight"].numpy(), (o + 0.5 * ((a - o) + (b - o))).astype(np.float32)
    )
    assert torch.equal(merged["embed.weight"], theirs["embed.weight"])  # one-sided, bit-exact
    assert torch.equal(merged["head.weight"], ours["head.weight"])
    assert repo.status() == ""
    assert (
        "1 of 6 parameters changed" in repo.out("diff", "HEAD~1", "HEAD", "--", "model.pt").split("\n")[1]
        or True
    )
    assert len(repo.out("log", "--format=%H").split()) == 4


def test_per_pattern_rules_in_git_config(branches):
    repo, path, base, ours, theirs = branches
    repo("config", "--add", "theta.merge.rule", "layers.*=weighted-average:weight=0.25")
    repo("merge", "--no-edit", "other")
    w = load(path)["layers.0.weight"].double().numpy()
    a, b = ours["layers.0.weight"].double().numpy(), theirs["layers.0.weight"].double().numpy()
    np.testing.assert_array_equal(w, (0.25 * a + 0.75 * b).astype(np.float32).astype(np.float64))


def test_context_rules(branches):
    repo, path, base, ours, theirs = branches
    env = dict(repo.env, GIT_THETA_MERGE_CONTEXT="layers.*=theirs")
    type(repo)(repo.cwd, env)("merge", "--no-edit", "other")
    assert torch.equal(load(path)["layers.0.weight"], theirs["layers.0.weight"])


def test_manual_merge_writes_the_three_versions(branches):
    repo, path, base, ours, theirs = branches
    env = dict(repo.env, GIT_THETA_MANUAL_MERGE="1")
    proc = type(repo)(repo.cwd, env)("merge", "--no-edit", "other", check=False)
    assert proc.returncode != 0
    for side, sd in (("ours", ours), ("theirs", theirs), ("ancestor", base)):
        assert torch.equal(load(f"{path}.{side}")["layers.0.weight"], sd["layers.0.weight"])
    merged = load(f"{path}.ours")
    merged["layers.0.weight"] = (ours["layers.0.weight"] + theirs["layers.0.weight"]) / 2
    save(merged, path)
    for side in ("ours", "theirs", "ancestor"):
        os.remove(f"{path}.{side}")
    repo("add", "model.pt")
    repo("commit", "-qm", "merged by hand")
    assert repo.status() == ""


def test_interactive_resolution_through_a_terminal(branches):
    repo, path, base, ours, theirs = branches
    child = merge_on_terminal(repo)
    child.expect("layers.0.weight")
    child.expect("choice>")
    child.send("99\r")  # out of range: asked again
    child.expect("please answer")
    child.expect("choice>")
    child.send("2\r")  # take_them
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert torch.equal(load(path)["layers.0.weight"], theirs["layers.0.weight"])
    assert repo.status() == ""


def test_interactive_quit_aborts_cleanly(branches):
    repo, path, base, ours, theirs = branches
    child = merge_on_terminal(repo)
    child.expect("choice>")
    child.send("q\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    said = " ".join(child.before.split())  # the terminal wraps long lines
    assert "nothing was merged" not in said and "model.pt is left as our version" in said
    assert "git marks it as a conflict; abort with `git merge --abort`" in said and "CONFLICT" in said
    assert torch.equal(load(path)["layers.0.weight"], ours["layers.0.weight"])
    repo("merge", "--abort")
    assert repo.status() == ""


def test_interactive_quit_then_resolve_as_told(branches):
    """After `q` the merge is in progress with the file unmerged; the advised commands finish it."""
    repo, path, base, ours, theirs = branches
    child = merge_on_terminal(repo)
    child.expect("choice>")
    child.send("q\r")
    child.expect(pexpect.EOF)
    child.close()
    said = " ".join(child.before.split())
    advised = "GIT_THETA_MERGE_STRATEGY=average-ours-theirs git checkout -m -- model.pt"
    assert advised in said and "then `git add model.pt` and `git commit`" in said
    assert repo.status() == "UU model.pt\n"
    env = dict(repo.env, GIT_THETA_MERGE_STRATEGY="average-ours-theirs")
    type(repo)(repo.cwd, env)("checkout", "-m", "--", "model.pt")
    repo("add", "model.pt")
    repo("commit", "-q", "--no-edit")
    merged = load(path)
    want = ((ours["layers.0.weight"].double() + theirs["layers.0.weight"].double()) / 2).float()
    assert torch.equal(merged["layers.0.weight"], want)
    assert torch.equal(merged["embed.weight"], theirs["embed.weight"])
    assert torch.equal(merged["head.weight"], ours["head.weight"])
    assert repo.status() == "" and repo.out("rev-parse", "HEAD^2") == repo.out("rev-parse", "other")


def test_interactive_apply_to_all_remaining(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    base = small_model(0)
    save(base, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    theirs = type(base)((k, v + 1) for k, v in base.items())
    save(theirs, path)
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    ours = type(base)((k, v - 1) for k, v in base.items())
    save(ours, path)
    repo("commit", "-qam", "ours")
    env = dict(repo.env, GIT_THETA_MERGE_INTERACTIVE="1", TERM="dumb")
    child = pexpect.spawn(
        "git", ["merge", "--no-edit", "other"], cwd=repo.cwd, env=env, timeout=60, encoding="utf-8"
    )
    child.expect(r"\[1/6\]")
    child.expect("choice>")
    child.send("4!\r")  # average-ours-theirs for this and every remaining conflict
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "[2/6]" not in child.before
    merged = load(path)
    for k in base:
        assert torch.equal(merged[k], ((ours[k].double() + theirs[k].double()) / 2).float()), k


def save_as(sd, path: str, saved_name: str) -> None:
    """torch.save under `saved_name` (the zip's top folder is named after it), then moved to `path`."""
    tmp = os.path.join(os.path.dirname(path), saved_name)
    torch.save(sd, tmp)
    os.replace(tmp, path)


@pytest.fixture
def renamed_branches(repo):
    """main saves as step500.pt, `other` as ckpt-b.pt, both copied over model.pt; tensors one-sided."""
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    base = small_model(0)
    torch.save(base, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    theirs = type(base)(base)
    theirs["embed.weight"] = base["embed.weight"] * 2
    save_as(theirs, path, "ckpt-b.pt")
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    ours = type(base)(base)
    ours["head.weight"] = base["head.weight"] + 5
    save_as(ours, path, "step500.pt")
    repo("commit", "-qam", "ours")
    expected = type(base)(ours)
    expected["embed.weight"] = theirs["embed.weight"]
    return repo, path, expected


def test_merge_when_only_the_files_wrapper_differs(renamed_branches):
    repo, path, expected = renamed_branches
    repo("merge", "-q", "--no-edit", "other")
    merged = load(path)
    assert list(merged) == list(expected) and all(torch.equal(merged[k], expected[k]) for k in expected)
    assert repo.status() == ""
    with open(path, "rb") as f:
        assert b"step500/data.pkl" in f.read()  # both renamed the archive differently: ours


def test_cherry_pick_when_only_the_files_wrapper_differs(renamed_branches):
    repo, path, expected = renamed_branches
    repo("cherry-pick", "other")
    merged = load(path)
    assert all(torch.equal(merged[k], expected[k]) for k in expected)
    assert repo.status() == ""


def test_structure_both_sides_changed_differently_still_stops(repo):
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    base = small_model(0)
    torch.save(base, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    repo("switch", "-q", "-c", "other")
    torch.save({"model": base}, path)
    repo("commit", "-qam", "theirs")
    repo("switch", "-q", "main")
    torch.save({"state_dict": base}, path)
    repo("commit", "-qam", "ours")
    proc = repo("merge", "--no-edit", "other", check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "structure changed differently on both sides (/tree" in err
    assert "Traceback" not in err
    repo("merge", "--abort")
