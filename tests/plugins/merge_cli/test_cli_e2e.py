"""End to end: git-theta-merge-cli on three small models committed in a real repo."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from git_theta.metadata import Metadata
from tests.helpers import load, save, small_model


def merge_cli(repo, *args, check=True):
    proc = subprocess.run(["git-theta-merge-cli", *args], cwd=repo.cwd, env=repo.env, capture_output=True)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


@pytest.fixture
def three(repo):
    """base.pt and three fine-tunes of it (m3 only at HEAD~1: given as REV:PATH); layers.1.bias never changes."""
    repo.theta("track", "*.pt")
    base = small_model(0, width=16)
    save(base, os.path.join(repo.cwd, "base.pt"))
    tuned = []
    for i in range(3):
        g = torch.Generator().manual_seed(10 + i)
        sd = type(base)(
            (k, v + torch.randn(v.shape, generator=g) * 0.1 if k != "layers.1.bias" else v.clone())
            for k, v in base.items()
        )
        save(sd, os.path.join(repo.cwd, f"m{i + 1}.pt"))
        tuned.append(sd)
    repo("add", "-A")
    repo("commit", "-qm", "models")
    os.remove(os.path.join(repo.cwd, "m3.pt"))
    repo("commit", "-qam", "drop m3")
    return base, tuned


def ties_numpy(base, tuned, density, lam):
    out = {}
    for k in base:
        b = base[k].numpy().astype(np.float64)
        taus = []
        for sd in tuned:
            t = sd[k].numpy().astype(np.float64) - b
            n = int(round(density * t.size))
            thr = np.sort(np.abs(t).ravel())[::-1][n - 1]
            taus.append(np.where(np.abs(t) >= thr, t, 0))
        sign = np.sign(sum(taus))
        agree = [(np.sign(t) == sign) & (t != 0) for t in taus]
        merged = sum(t * a for t, a in zip(taus, agree)) / np.maximum(sum(a.astype(float) for a in agree), 1)
        out[k] = b + lam * merged
    return out


def test_ties_merge_of_three_models(repo, three):
    base, tuned = three
    head = repo.out("rev-parse", "HEAD").strip()
    out = merge_cli(
        repo, "--models", "m1.pt", "m2.pt", "HEAD~1:m3.pt", "--ancestor", "base.pt",
        "--merge", "ties", "--x:density=0.5", "--x:merge_lambda", "0.8", "--output", "merged.pt",
    )  # fmt: skip
    assert "merged.pt: merged with ties" in out.stdout.decode()
    assert repo.out("rev-parse", "HEAD~1").strip() == head
    merged = load(os.path.join(repo.cwd, "merged.pt"))
    expected = ties_numpy(base, tuned, 0.5, 0.8)
    for k in base:
        assert np.allclose(merged[k].numpy(), expected[k], atol=1e-5), k
    msg = repo.out("log", "-1", "--format=%B")
    record = json.loads(msg.split("git-theta-merge-cli: ", 1)[1])
    assert (
        record["method"] == "ties"
        and record["arguments"]["density"] == 0.5
        and record["parameters_merged"] == 5
    )
    meta = Metadata.loads(repo.out("show", "HEAD:merged.pt").encode())
    m1 = Metadata.loads(repo.out("show", "HEAD:m1.pt").encode())
    assert meta.params["layers.1.bias"] == m1.params["layers.1.bias"]  # equal everywhere: copied
    assert repo.status() == ""


def test_global_majority_sign_pre_pass(repo, three):
    base, tuned = three
    proc = subprocess.run(
        ["git-theta-merge-majority-sign", "--models", "m1.pt", "m2.pt", "HEAD~1:m3.pt", "--ancestor", "base.pt",
         "--density", "0.3", "--output", "sign.safetensors"],
        cwd=repo.cwd, env=repo.env, capture_output=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    merge_cli(
        repo, "--models", "m1.pt", "m2.pt", "HEAD~1:m3.pt", "--ancestor", "base.pt", "--merge", "ties",
        "--x:density=0.3", "--x:global_majority_sign=sign.safetensors", "--x:merge_lambda=1", "--output", "merged.pt",
    )  # fmt: skip
    # the numpy version: thresholds over each whole task vector, sign from all trimmed entries
    taus = [{k: sd[k].numpy() - base[k].numpy() for k in base} for sd in tuned]
    merged = load(os.path.join(repo.cwd, "merged.pt"))
    thresholds = []
    for t in taus:
        flat = np.abs(np.concatenate([v.ravel() for v in t.values()]))
        thresholds.append(np.sort(flat)[::-1][int(round(0.3 * flat.size)) - 1])
    for k in base:
        trimmed = [np.where(np.abs(t[k]) >= th, t[k], 0) for t, th in zip(taus, thresholds)]
        sign = np.sign(sum(trimmed))
        agree = [(np.sign(t) == sign) & (t != 0) for t in trimmed]
        want = base[k].numpy() + sum(t * a for t, a in zip(trimmed, agree)) / np.maximum(
            sum(a.astype(float) for a in agree), 1
        )
        assert np.allclose(merged[k].numpy(), want, atol=1e-5), k


def test_fisher_with_aux_files_and_staged_changes_untouched(repo, three):
    base, tuned = three
    fishers = []
    for i, sd in enumerate(tuned):
        f = {k: torch.rand(v.shape, generator=torch.Generator().manual_seed(i)) for k, v in sd.items()}
        torch.save(f, os.path.join(repo.cwd, f"fisher{i}.pt"))
        fishers.append(f)
    with open(os.path.join(repo.cwd, "notes.txt"), "w") as fh:
        fh.write("staged, not part of the merge\n")
    repo("add", "notes.txt")
    merge_cli(
        repo, "--models", "m1.pt", "m2.pt", "HEAD~1:m3.pt", "--aux_data", "fisher0.pt", "fisher1.pt", "fisher2.pt",
        "--merge", "fisher", "--output", "out/fisher.pt", "-m", "fisher soup",
    )  # fmt: skip
    merged = load(os.path.join(repo.cwd, "out", "fisher.pt"))
    for k in base:
        f = [x[k].double() for x in fishers]  # no floor by default: the original's formula
        want = sum(fi * sd[k].double() for fi, sd in zip(f, tuned)) / sum(f)
        assert torch.allclose(merged[k].double(), want, atol=1e-5)
    assert repo.out("log", "-1", "--format=%s").strip() == "fisher soup"
    assert "notes.txt" not in repo.out("show", "--stat", "HEAD")
    assert "A  notes.txt" in repo.status()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--merge", "nope"], "unknown merge method 'nope'; known: average"),
        (["--merge", "ties", "--x:bogus=1"], "ties has no argument bogus"),
        (["--merge", "fisher"], "fisher needs --aux_data"),
        (["--merge", "ties", "--device", "cuda"], "no CUDA device"),
        (["--merge", "average", "--models", "m1.pt", "small.pt"], "shapes differ between m1.pt and small.pt"),
        (["--merge", "average", "--models", "m1.pt", "missing.pt"], "missing.pt: no such file at HEAD"),
    ],
)
def test_errors_are_one_line_and_commit_nothing(repo, three, args, message):
    if not torch.cuda.is_available() or "cuda" not in args:
        save(small_model(0, width=8), os.path.join(repo.cwd, "small.pt"))
        repo("add", "small.pt")
        repo("commit", "-qm", "small")
        head = repo.out("rev-parse", "HEAD")
        models = [] if "--models" in args else ["--models", "m1.pt", "m2.pt", "--ancestor", "base.pt"]
        proc = merge_cli(repo, *models, *args, "--output", "merged.pt", check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
        assert repo.out("rev-parse", "HEAD") == head and not os.path.exists(
            os.path.join(repo.cwd, "merged.pt")
        )


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_majority_sign_original_form_prints_the_global_sign(repo, flip):
    """The original plug-in's pre-pass: `git-theta-merge-majority-sign --ties A B C` over
    trimmed task vectors prints the global sign that --x:global_majority_sign takes."""
    repo.theta("track", "*.pt")
    g = torch.Generator().manual_seed(3)
    trimmed = []
    for i in range(3):
        sd = {k: torch.randn(v.shape, generator=g) for k, v in small_model(0).items()}
        sd = {k: (v.abs() + 0.1) * flip if i < 2 else -v.abs() * 0.01 * flip for k, v in sd.items()}
        save(sd, os.path.join(repo.cwd, f"ties{i}.pt"))
        trimmed.append(sd)
    repo("add", "-A")
    repo("commit", "-qm", "trimmed task vectors")
    proc = subprocess.run(
        ["git-theta-merge-majority-sign", "--ties", "ties0.pt", "ties1.pt", "ties2.pt", "--limit-concurrency", "2"],
        cwd=repo.cwd, env=repo.env, capture_output=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    total = sum(float(torch.sign(sum(t[k] for t in trimmed)).sum()) for k in trimmed[0])
    assert proc.stdout.decode().strip() == f"Global Majority Sign is: {1 if total >= 0 else -1}"
    assert proc.stdout.decode().strip().endswith("1" if flip > 0 else "-1")
    both = subprocess.run(
        ["git-theta-merge-majority-sign", "--ties", "ties0.pt", "--models", "ties1.pt"],
        cwd=repo.cwd, env=repo.env, capture_output=True,
    )  # fmt: skip
    assert both.returncode == 1 and b"either --ties" in both.stderr and b"Traceback" not in both.stderr
