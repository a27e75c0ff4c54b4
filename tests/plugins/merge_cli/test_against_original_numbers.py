"""Ours against numbers recorded from the ORIGINAL plug-in (blester125/git-theta, branch
feat/merge-cli, commit 06aff58; torch 2.13.0, numpy 2.4, scipy 1.17, Python 3.11, CPU).

The original cannot be installed in CI, so its outputs are kept here as constants: the same tiny
models and aux files as built below were committed with the original git-theta in its own repository,
the command lines below run there with `git-theta-merge-cli` (its -gpu methods with `--x:device cpu`
added, as it needs CUDA otherwise), and each merged tensor t recorded as (sum t, sum t * cos(index))
in float64. The comparison script lives outside the repository (/tmp/hK-compare in the session that
recorded them)."""

import os

import pytest
import torch

from tests.helpers import load
from tests.plugins.merge_cli.test_cli_e2e import merge_cli

MODELS = ["models/a/model.pt", "models/b/model.pt", "models/c/model.pt"]
ANCESTOR = ["--ancestor", "model/pretrained/model.pt"]
SHAPES = {
    "embed.weight": (10, 6),
    "layers.0.weight": (8, 6),
    "layers.0.bias": (8,),
    "layers.1.weight": (6, 8),
    "layers.1.bias": (6,),
    "layers.2.weight": (6, 6),
    "norm.weight": (6,),  # equal in every model
    "transformer.lm_head.weight": (10, 6),
}


def aux(kind):
    return ["--aux_data"] + [m.replace("model.pt", f"{kind}.pt") for m in MODELS]


def fixture_files():
    """{path: state dict}: the ancestor, three fine-tunes and their aux files, as given to the original."""
    g = torch.Generator().manual_seed(20)
    base = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    files = {"model/pretrained/model.pt": base}
    for name in "abc":
        sd = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        sd["norm.weight"] = base["norm.weight"].clone()
        files[f"models/{name}/model.pt"] = sd
    for i, name in enumerate("abc"):
        sd = files[f"models/{name}/model.pt"]
        ties = {}  # task vectors trimmed to their top 40% magnitudes
        for k, v in sd.items():
            tv = v - base[k]
            thr = tv.abs().flatten().topk(max(1, int(0.4 * tv.numel()))).values[-1]
            ties[k] = torch.where(tv.abs() >= thr, tv, torch.zeros_like(tv))
        ties["layers.1.bias"] = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0]) * [1.0, -1.0, 0.0][i]
        fisher = {
            k: torch.rand(v.shape, generator=g) * (torch.rand(v.shape, generator=g) > 0.25)
            for k, v in sd.items()
        }
        fisher["layers.0.bias"] = torch.zeros(8) if i < 2 else fisher["layers.0.bias"]
        cov, mats = {}, {}
        for k, v in sd.items():
            if v.dim() == 2:
                x = torch.randn(30, v.shape[1], generator=g)
                cov[k] = x.T @ x
            if k != "norm.weight":
                y = torch.randn(30, v.shape[0], generator=g)
                mats[k] = y.T @ y / 30
        for kind, data in (("ties", ties), ("fisher", fisher), ("covariance", cov), ("mats", mats)):
            files[f"models/{name}/{kind}.pt"] = data
    return files


def fingerprint(t):
    t = t.double().flatten()
    return float(t.sum()), float((t * torch.cos(torch.arange(t.numel(), dtype=torch.float64))).sum())


BASE = {
    "embed.weight": (2.9232841, -4.41456),
    "layers.0.bias": (3.6563477, 0.6994667),
    "layers.0.weight": (9.9750039, -4.3515162),
    "layers.1.bias": (-2.4947563, -1.3809162),
    "layers.1.weight": (4.7796924, 2.436183),
    "layers.2.weight": (11.7513506, -1.8381491),
    "norm.weight": (1.5482858, -0.3838217),
    "transformer.lm_head.weight": (5.3316295, -0.666738),
}

# (what, command line without --models/--output, the original's fingerprints)
CASES = [
    (
        "README TIES example (+ --ancestor, which it needs), -gpu run with --x:device cpu",
        [
            *MODELS,
            *aux("ties"),
            *ANCESTOR,
            "--x:merge_lambda",
            "0.1",
            "--merge",
            "ties-gpu",
            "--x:device",
            "cpu",
        ],
        {
            "embed.weight": (2.9547797, -4.3320719),
            "layers.0.bias": (3.6516191, 0.675452),
            "layers.0.weight": (9.8953426, -4.2705475),
            "layers.1.bias": (-1.7947564, -1.3711893),
            "layers.1.weight": (4.835727, 2.4567436),
            "layers.2.weight": (11.7896221, -1.7025725),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (5.298112, -0.7512141),
        },
    ),
    (
        "README Fisher example unchanged (the original ran it with --x:device cpu added)",
        [*MODELS, *aux("fisher"), "--merge", "fisher-gpu"],
        {
            "embed.weight": (3.479398, -4.0174635),
            "layers.0.bias": (0.8552009, 1.7859317),
            "layers.0.weight": (9.4817018, -3.6726766),
            "layers.1.bias": (-2.2955565, -1.3674994),
            "layers.1.weight": (5.1698936, 2.4498568),
            "layers.2.weight": (11.9505281, -1.4434476),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (3.5685451, -1.3213383),
        },
    ),
    (
        "README MaTS example from the pre-trained model (the original's task arithmetic crashes)",
        [*MODELS, *aux("covariance"), *ANCESTOR, "--x:iterations", "20", "--merge", "covariance-mats-gpu"],
        {
            "embed.weight": (2.7047412, -4.1269243),
            "layers.0.bias": (3.6582475, 0.5377096),
            "layers.0.weight": (9.1872099, -3.6111932),
            "layers.1.bias": (-2.4093408, -1.3641267),
            "layers.1.weight": (5.0394672, 2.3932651),
            "layers.2.weight": (11.9794556, -1.5277974),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (5.0058072, -1.0312787),
        },
    ),
    (
        "average with per-model merge_lambda (not normalized; the equal norm.weight is scaled too)",
        [
            *MODELS,
            "--x:merge_lambda",
            "0.2",
            "--x:merge_lambda",
            "0.3",
            "--x:merge_lambda",
            "0.9",
            "--merge",
            "average",
        ],
        {
            "embed.weight": (4.3441746, -5.9415056),
            "layers.0.bias": (5.2082989, 0.8369576),
            "layers.0.weight": (13.0864985, -5.2455378),
            "layers.1.bias": (-3.4679542, -1.9195683),
            "layers.1.weight": (6.429375, 4.0722754),
            "layers.2.weight": (16.8010349, -1.6048921),
            "norm.weight": (2.1676001, -0.5373504),
            "transformer.lm_head.weight": (7.4245546, -1.5192896),
        },
    ),
    (
        "TIES on pre-trimmed task vectors, --x:global_majority_sign -1 (layers.1.bias sums to 0)",
        [*MODELS, *aux("ties"), *ANCESTOR, "--x:global_majority_sign", "-1", "--merge", "ties"],
        {
            "embed.weight": (2.9547797, -4.3320719),
            "layers.0.bias": (3.6516191, 0.675452),
            "layers.0.weight": (9.8953426, -4.2705475),
            "layers.1.bias": (-3.1947563, -1.3906431),
            "layers.1.weight": (4.835727, 2.4567436),
            "layers.2.weight": (11.7896221, -1.7025725),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (5.298112, -0.7512141),
        },
    ),
    (
        "Fisher of two models scaled by merge_lambda 0.3 and 2",
        [
            *MODELS[:2],
            *aux("fisher")[:3],
            "--x:merge_lambda",
            "0.3",
            "--x:merge_lambda",
            "2",
            "--merge",
            "fisher",
        ],
        {
            "embed.weight": (3.8324282, -3.5084277),
            "layers.0.bias": (0.0, 0.0),
            "layers.0.weight": (10.2917637, -3.8808887),
            "layers.1.bias": (-2.3274308, -1.2141611),
            "layers.1.weight": (2.3449097, 4.0993593),
            "layers.2.weight": (13.6460611, -2.862683),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (2.5452794, -1.3407044),
        },
    ),
    (
        "MaTS with the original's [rows, rows] aux files (layers.2.weight is square), 3 CG steps",
        [*MODELS, *aux("mats"), *ANCESTOR, "--x:iterations", "3", "--merge", "mats"],
        {
            "embed.weight": (3.2897705, -4.2648106),
            "layers.0.bias": (3.7369502, 0.5312144),
            "layers.0.weight": (9.104969, -3.8203093),
            "layers.1.bias": (-2.3905369, -1.3761895),
            "layers.1.weight": (4.7844917, 2.4476089),
            "layers.2.weight": (11.8817573, -1.4498187),
            "norm.weight": (1.5482858, -0.3838217),
            "transformer.lm_head.weight": (4.7389384, -1.1081854),
        },
    ),
]


@pytest.fixture
def original_fixture(repo):
    repo.theta("track", "*.pt")
    for path, sd in fixture_files().items():
        os.makedirs(os.path.join(repo.cwd, os.path.dirname(path)), exist_ok=True)
        torch.save(sd, os.path.join(repo.cwd, path))
    repo("add", "-A")
    repo("commit", "-qm", "models and aux data")
    return repo


def test_the_recorded_inputs_are_rebuilt():
    base = fixture_files()["model/pretrained/model.pt"]
    for k, want in BASE.items():
        assert fingerprint(base[k]) == pytest.approx(want, abs=1e-6), k


def test_ours_gives_the_originals_numbers(original_fixture):
    repo = original_fixture
    for i, (what, args, want) in enumerate(CASES):
        out = f"merged{i}.pt"
        merge_cli(repo, "--models", *args, "--output", out)
        got = load(os.path.join(repo.cwd, out))
        assert sorted(got) == sorted(want), what
        for k, fp in want.items():
            assert fingerprint(got[k]) == pytest.approx(fp, abs=2e-5), f"{what}: {k}"
