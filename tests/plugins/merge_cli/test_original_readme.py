"""The original plug-in's README examples, run unchanged (paths, flags and `--x:NAME VALUE` forms),
against numpy versions of the original plug-in's formulas; plus its other flags."""

import json
import os

import numpy as np
import pytest
import torch

from tests.helpers import load, small_model
from tests.plugins.merge_cli.test_cli_e2e import merge_cli

MODELS = ["models/a/model.pt", "models/b/model.pt", "models/c/model.pt"]
LINEAR = ["layers.0.weight", "layers.1.weight", "head.weight"]


def lambdas(value, n):
    """The original's get_merge_lambdas without uniform: (l, 1 - l) for two models, else l each."""
    return [value, 1 - value] if n == 2 else [value] * n


def cg(apply, b, x, iterations, rtol=1e-5):
    """Conjugate gradient with scipy's stopping rule (the original calls scipy.sparse.linalg.cg)."""
    r = b - apply(x)
    p, rs = r.copy(), np.sum(r * r)
    for _ in range(iterations):
        if np.sqrt(rs) <= rtol * np.linalg.norm(b):
            break
        ap = apply(p)
        alpha = rs / np.sum(p * ap)
        x, r = x + alpha * p, r - alpha * ap
        rs_new = np.sum(r * r)
        p, rs = r + rs_new / rs * p, rs_new
    return x


@pytest.fixture
def readme_repo(repo):
    """The README's layout: three fine-tunes, the pre-trained model and per-model statistics, committed."""
    repo.theta("track", "*.pt")
    base = small_model(0, width=16)
    g = torch.Generator().manual_seed(1)
    tuned = [{k: v + torch.randn(v.shape, generator=g) * 0.1 for k, v in base.items()} for _ in MODELS]
    stats = []
    for path, sd in zip(MODELS, tuned):
        folder = os.path.join(repo.cwd, os.path.dirname(path))
        os.makedirs(folder)
        torch.save(sd, os.path.join(repo.cwd, path))
        tv = {k: v - base[k] for k, v in sd.items()}
        ties = {
            k: torch.where(v.abs() >= v.abs().flatten().kthvalue(max(1, v.numel() * 4 // 5)).values, v, 0)
            for k, v in tv.items()
        }
        sign = {"models/a": 1.0, "models/b": -1.0}.get(path[:8], 0.0)
        ties["layers.1.bias"] = torch.tensor([1.0, -1.0] * 8) * sign  # a and b cancel, c is zero
        fisher = {
            k: torch.rand(v.shape, generator=g) * (torch.rand(v.shape, generator=g) > 0.2)
            for k, v in sd.items()
        }
        cov = {}
        for k in LINEAR:
            x = torch.randn(40, sd[k].shape[1], generator=g)
            cov[k] = x.T @ x
        for name, data in (("ties", ties), ("fisher", fisher), ("covariance", cov)):
            torch.save(data, os.path.join(folder, f"{name}.pt"))
        stats.append({"ties": ties, "fisher": fisher, "covariance": cov})
    os.makedirs(os.path.join(repo.cwd, "model/pretrained"))
    torch.save(base, os.path.join(repo.cwd, "model/pretrained/model.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "models and statistics")
    np_base = {k: v.double().numpy() for k, v in base.items()}
    np_tuned = [{k: v.double().numpy() for k, v in sd.items()} for sd in tuned]
    np_stats = [{kind: {k: v.double().numpy() for k, v in d.items()} for kind, d in s.items()} for s in stats]
    return repo, np_base, np_tuned, np_stats


def merged(repo, path):
    return {k: v.double().numpy() for k, v in load(os.path.join(repo.cwd, path)).items()}


def close(got, want, atol=1e-5):
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=atol, rtol=1e-4, err_msg=k)


def test_every_readme_example_runs_unchanged_with_the_originals_numbers(readme_repo):
    repo, base, tuned, stats = readme_repo
    aux = lambda kind: [m.replace("model.pt", f"{kind}.pt") for m in MODELS]  # noqa: E731

    merge_cli(repo, "--models", *MODELS, "--output", "merges/average/merged.pt", "--merge", "average-gpu")
    close(merged(repo, "merges/average/merged.pt"), {k: sum(t[k] for t in tuned) / 3 for k in base})

    ta = "merges/task_arithmetic/merge_lambda_0.1/merged.pt"
    merge_cli(repo, "--models", *MODELS, "--ancestor", "model/pretrained/model.pt", "--x:merge_lambda", "0.1",
              "--output", ta, "--merge", "task-arithmetic-gpu")  # fmt: skip
    want_ta = {k: base[k] + sum(0.1 * (t[k] - base[k]) for t in tuned) for k in base}
    close(merged(repo, ta), want_ta)

    dare = "merges/dare_task_arithmetic/merge_lambda_0.1_dropout_0.2/merged.pt"
    merge_cli(repo, "--models", *MODELS, "--ancestor", "model/pretrained/model.pt", "--x:merge_lambda", "0.1",
              "--x:dropout_probability", "0.2", "--output", dare, "--merge", "dare-task-arithmetic-gpu")  # fmt: skip
    got = merged(repo, dare)
    for k in base:  # random masks: every kept entry is tau / (1 - p), scaled by lambda
        delta = (got[k] - base[k]) / 0.1 * 0.8
        taus = [t[k] - base[k] for t in tuned]
        subsets = [sum(tau * ((m >> i) & 1) for i, tau in enumerate(taus)) for m in range(8)]
        assert np.min(np.abs(np.stack(subsets) - delta), axis=0).max() < 1e-5

    merge_cli(repo, "--models", *MODELS, "--aux_data", *aux("ties"), "--x:merge_lambda", "0.1",
              "--output", "merges/ties/merge_lambda_0.1/merged.pt", "--merge", "ties-gpu",
              "--ancestor", "model/pretrained/model.pt")  # fmt: skip
    want = {}
    for k in base:
        taus = [s["ties"][k] for s in stats]
        sign = np.sign(sum(taus))
        majority = np.sign(np.sign(sum(taus)).sum()) or 1.0
        sign = np.where(sign == 0, majority, sign)
        agree = [np.where(sign > 0, t > 0, t < 0) for t in taus]
        want[k] = base[k] + 0.1 * sum(t * a for t, a in zip(taus, agree)) / np.maximum(sum(agree), 1)
    close(merged(repo, "merges/ties/merge_lambda_0.1/merged.pt"), want)

    merge_cli(repo, "--models", *MODELS, "--aux_data", *aux("fisher"), "--output", "merges/fisher/merged.pt",
              "--merge", "fisher-gpu")  # fmt: skip
    want = {}
    for k in base:
        num = sum(s["fisher"][k] * t[k] for s, t in zip(stats, tuned))
        den = sum(s["fisher"][k] for s in stats)
        want[k] = num / np.where(den == 0, 1, den)
    close(merged(repo, "merges/fisher/merged.pt"), want)

    merge_cli(repo, "--models", *MODELS, "--aux_data", *aux("covariance"), "--x:merge_lambda", "0.1",
              "--output", "merges/regmean/merge_lambda_0.1/merged.pt", "--merge", "reg-mean-gpu")  # fmt: skip
    want = {k: sum(t[k] for t in tuned) / 3 for k in base}
    for k in LINEAR:
        grams = [0.1 * s["covariance"][k] + 0.9 * np.diag(np.diag(s["covariance"][k])) for s in stats]
        want[k] = (np.linalg.inv(sum(grams)) @ sum(g @ t[k].T for g, t in zip(grams, tuned))).T
    close(merged(repo, "merges/regmean/merge_lambda_0.1/merged.pt"), want, atol=1e-4)

    merge_cli(repo, "--models", *MODELS, "--aux_data", *aux("covariance"), "--ancestor", ta, "--x:iterations", "20",
              "--output", "merges/mats/interations_20/merged.pt", "--merge", "covariance-mats-gpu")  # fmt: skip
    ta_value = merged(repo, ta)
    want = {k: sum(t[k] for t in tuned) / 3 for k in base}
    for k in LINEAR:
        total = sum(s["covariance"][k] for s in stats)
        b = sum(s["covariance"][k] @ t[k].T for s, t in zip(stats, tuned))
        want[k] = cg(lambda v, total=total: total @ v, b, ta_value[k].T, 20).T
    close(merged(repo, "merges/mats/interations_20/merged.pt"), want, atol=1e-3)


def test_original_forms_of_arguments_and_flags(readme_repo, tmp_path):
    repo, base, tuned, stats = readme_repo
    two = MODELS[:2]
    merge_cli(repo, "--models", *MODELS, "--x:merge_lambda", "0.2", "--x:merge_lambda", "0.3",
              "--x:merge_lambda", "0.9", "--output", "avg.pt", "--merge", "average")  # fmt: skip
    close(
        merged(repo, "avg.pt"), {k: 0.2 * tuned[0][k] + 0.3 * tuned[1][k] + 0.9 * tuned[2][k] for k in base}
    )

    merge_cli(repo, "--models", *two, "--ancestor", "model/pretrained/model.pt", "--output", "ta2.pt",
              "--merge", "task-arithmetic", "--limit-concurrency", "2")  # fmt: skip
    w = lambdas(0.1, 2)  # the original's default lambda, as (l, 1 - l) for two models
    close(
        merged(repo, "ta2.pt"),
        {k: base[k] + sum(wi * (t[k] - base[k]) for wi, t in zip(w, tuned)) for k in base},
    )

    merge_cli(repo, "--models", *two, "--aux_data", "models/a/fisher.pt", "models/b/fisher.pt",
              "--x:merge_lambda", "0.3", "--x:merge_lambda", "2", "--output", "f.pt", "--merge", "fisher")  # fmt: skip
    want = {}
    for k in base:
        fs = [0.3 * stats[0]["fisher"][k], 2 * stats[1]["fisher"][k]]
        den = sum(fs)
        want[k] = sum(f * t[k] for f, t in zip(fs, tuned)) / np.where(den == 0, 1, den)
    close(merged(repo, "f.pt"), want)

    for seed_args, out in ((["--x:seed", "7"], "d1.pt"), (["--seed", "7"], "d2.pt")):
        merge_cli(repo, "--models", *MODELS, "--ancestor", "model/pretrained/model.pt", *seed_args,
                  "--output", out, "--merge", "dare-task-arithmetic")  # fmt: skip
    close(merged(repo, "d1.pt"), merged(repo, "d2.pt"), atol=0)

    merge_cli(repo, "--models", *MODELS, "--aux_data", *[m.replace("model.pt", "ties.pt") for m in MODELS],
              "--ancestor", "model/pretrained/model.pt", "--x:global_majority_sign", "-1", "--output", "t.pt",
              "--merge", "ties")  # fmt: skip
    k = "layers.1.bias"  # its aux task vectors cancel: sum 0 everywhere, the given sign -1 decides
    taus = [s["ties"][k] for s in stats]
    neg = [np.where(t < 0, t, 0) for t in taus]
    want = base[k] + 0.1 * sum(neg) / np.maximum(sum((t < 0).astype(float) for t in taus), 1)
    np.testing.assert_allclose(merged(repo, "t.pt")[k], want, atol=1e-6)

    mats_aux = []
    for i, sd in enumerate(tuned):
        a = np.random.default_rng(i).standard_normal((40, 16))
        mats_aux.append(
            {k: torch.tensor(a.T @ a, dtype=torch.float32) for k in LINEAR if sd[k].shape[0] == 16}
        )
        torch.save(mats_aux[-1], os.path.join(repo.cwd, f"mats{i}.pt"))
    log = tmp_path / "merge_log.jsonl"
    merge_cli(repo, "--models", *MODELS, "--aux_data", "mats0.pt", "mats1.pt", "mats2.pt", "--x:iterations", "50",
              "--x:merge_log", str(log), "--x:aux_form", "matrix", "--output", "mats.pt", "--merge", "mats",
              "--test_run", "4")  # fmt: skip
    got = merged(repo, "mats.pt")
    # --test_run 4: the first four parameters in sorted order (the original's metadata order), kept in
    # the checkpoint's order
    assert list(got) == [k for k in base if k in sorted(base)[:4]] != list(base)[:4]
    total = sum(a["layers.0.weight"].double().numpy() for a in mats_aux)
    b = sum(a["layers.0.weight"].double().numpy() @ t["layers.0.weight"] for a, t in zip(mats_aux, tuned))
    np.testing.assert_allclose(got["layers.0.weight"], np.linalg.solve(total, b), atol=1e-4)
    np.testing.assert_allclose(got["embed.weight"], sum(t["embed.weight"] for t in tuned) / 3, atol=1e-6)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [list(r) for r in records] == [["layers.0.weight"]]
    record = records[0]["layers.0.weight"]
    assert set(record) == {"exit_code", "initial_error", "final_error"}
    assert record["final_error"] < record["initial_error"]


def test_aux_data_ignored_where_unused_and_device_argument_of_gpu_methods(readme_repo):
    """The original passes --aux_data to every method and ignores it where unused, and its -gpu
    methods take --x:device: both run here, the first with a one-line warning."""
    repo, base, tuned, stats = readme_repo
    fisher = [m.replace("model.pt", "fisher.pt") for m in MODELS]
    proc = merge_cli(
        repo, "--models", *MODELS, "--aux_data", *fisher, "--output", "avg.pt", "--merge", "average"
    )
    warnings = [line for line in proc.stderr.decode().splitlines() if "--aux_data" in line]
    assert len(warnings) == 1 and "ignoring" in warnings[0], proc.stderr.decode()
    close(merged(repo, "avg.pt"), {k: sum(t[k] for t in tuned) / 3 for k in base})

    proc = merge_cli(repo, "--models", *MODELS, "--ancestor", "model/pretrained/model.pt", "--aux_data", *fisher,
                     "--x:merge_lambda", "0.1", "--x:device", "cpu", "--output", "ta.pt",
                     "--merge", "task-arithmetic-gpu")  # fmt: skip
    assert "no CUDA device" not in proc.stderr.decode()  # the device was chosen: no fallback warning
    close(merged(repo, "ta.pt"), {k: base[k] + sum(0.1 * (t[k] - base[k]) for t in tuned) for k in base})
    assert '"device": "cpu"' in repo.out("log", "-1", "--format=%B")


def test_equal_parameters_are_merged_where_the_formula_moves_them(repo):
    """The original computes every parameter of models committed apart (their metadata differ), so
    a parameter equal in all models still gets scaled by merge_lambdas that do not sum to 1, or moved
    by TIES' pre-trimmed task vectors; it is copied only where the formula keeps it."""
    repo.theta("track", "*.pt")
    base = small_model(0, width=4, layers=1)
    same = {k: v + 1.0 for k, v in base.items()}  # the models are equal, and differ from the ancestor
    tvs = {k: torch.full(v.shape, 0.5) for k, v in base.items()}
    for i in range(2):
        torch.save(same, os.path.join(repo.cwd, f"m{i}.pt"))
        torch.save(tvs, os.path.join(repo.cwd, f"tv{i}.pt"))
    torch.save(base, os.path.join(repo.cwd, "base.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "equal models")
    two = ["--models", "m0.pt", "m1.pt"]
    merge_cli(repo, *two, "--x:merge_lambda", "0.5", "--x:merge_lambda", "1", "--output", "avg.pt", "--merge", "average")  # fmt: skip
    merge_cli(repo, *two, "--x:merge_lambda", "0.3", "--x:merge_lambda", "0.7", "--output", "avg1.pt")
    merge_cli(repo, *two, "--aux_data", "tv0.pt", "tv1.pt", "--ancestor", "base.pt", "--output", "ties.pt", "--merge", "ties")  # fmt: skip
    for k in base:
        np.testing.assert_allclose(load(os.path.join(repo.cwd, "avg.pt"))[k], 1.5 * same[k], atol=1e-6)
        np.testing.assert_allclose(load(os.path.join(repo.cwd, "avg1.pt"))[k], same[k], atol=1e-6)
        np.testing.assert_allclose(load(os.path.join(repo.cwd, "ties.pt"))[k], base[k] + 0.1 * 0.5, atol=1e-6)
    message = repo.out("log", "-1", "--format=%B", "HEAD~1")  # avg1.pt
    record = json.loads(message.split("git-theta-merge-cli: ")[1])
    assert record["parameters_merged"] == 0  # (0.3, 0.7) keeps equal values: copied
