"""Each merge method against a direct numpy version of its paper's formula, on small tensors."""

import numpy as np
import pytest
import torch
from git_theta_merge_cli import methods
from git_theta_merge_cli.methods.base import Inputs

from git_theta.errors import ThetaError

RNG = np.random.default_rng(0)
N, SHAPE = 3, (6, 5)
BASE = RNG.standard_normal(SHAPE)
MODELS = [BASE + RNG.standard_normal(SHAPE) * 0.1 for _ in range(N)]
TAUS = [m - BASE for m in MODELS]


def run(name, args=None, models=MODELS, ancestor=BASE, aux=None, seed=5, raw=False):
    method = methods.get(name)
    parsed = method.parse_args(
        {k: [str(x) for x in (v if isinstance(v, list) else [v])] for k, v in (args or {}).items()}
    )
    inputs = Inputs(
        "p",
        [torch.tensor(m) for m in models],
        torch.tensor(ancestor) if ancestor is not None else None,
        [torch.tensor(a) for a in aux] if aux is not None else None,
        seed,
    )
    return method.merge(inputs, parsed).numpy()


def trim(tau, density):
    k = int(round(density * tau.size))
    thr = np.sort(np.abs(tau).reshape(-1))[::-1][k - 1]
    return np.where(np.abs(tau) >= thr, tau, 0.0)


def disjoint(taus, sign=None):
    sign = np.sign(sum(taus)) if sign is None else sign
    agree = [(np.sign(t) == sign) & (t != 0) for t in taus]
    num = sum(t * a for t, a in zip(taus, agree))
    return num / np.maximum(sum(a.astype(float) for a in agree), 1)


def test_average_and_weighted():
    assert np.allclose(run("average"), sum(MODELS) / N)
    w = [1.0, 2.0, 5.0]
    assert np.allclose(run("average", {"weights": w}), sum(wi * m for wi, m in zip(w, MODELS)) / sum(w))


def test_task_arithmetic():
    assert np.allclose(run("task-arithmetic", {"merge_lambda": 0.4}), BASE + 0.4 * sum(TAUS))


def test_dare_matches_formula_with_the_same_masks():
    p, lam = 0.5, 0.8
    g = torch.Generator().manual_seed(5)
    expected = BASE.copy()
    total = 0
    for tau in TAUS:
        keep = (torch.rand(SHAPE, generator=g) >= p).numpy()
        total = total + keep * tau / (1 - p)
    expected = BASE + lam * total
    got = run("dare-task-arithmetic", {"dropout_probability": p, "merge_lambda": lam})
    assert np.allclose(got, expected)
    assert np.allclose(got, run("dare-task-arithmetic", {"dropout_probability": p, "merge_lambda": lam}))
    assert not np.allclose(got, run("dare-task-arithmetic", {"dropout_probability": p}, seed=6))


def test_ties():
    density, lam = 0.4, 0.7
    expected = BASE + lam * disjoint([trim(t, density) for t in TAUS])
    assert np.allclose(run("ties", {"density": density, "merge_lambda": lam}), expected)


def test_breadcrumbs():
    gamma, density = 0.1, 0.5
    total = 0
    for tau in TAUS:
        order = np.sort(np.abs(tau).reshape(-1))[::-1]
        hi, lo = int(round(gamma * tau.size)), int(round((gamma + density) * tau.size))
        keep = (np.abs(tau) < order[hi - 1]) & (np.abs(tau) >= order[lo - 1])
        total = total + tau * keep
    assert np.allclose(run("breadcrumbs", {"gamma": gamma, "density": density}), BASE + total)


def test_della():
    density, eps = 0.6, 0.2
    g = torch.Generator().manual_seed(5)
    taus = []
    for tau in TAUS:
        flat = np.abs(tau).reshape(-1)
        ranks = np.empty(flat.size)
        ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
        p = density + eps * (ranks / (flat.size - 1) - 0.5)
        keep = torch.rand(flat.size, generator=g).numpy() < p
        taus.append((tau.reshape(-1) * keep / p).reshape(SHAPE))
    assert np.allclose(run("della", {"density": density, "epsilon": eps}), BASE + disjoint(taus), atol=1e-6)


def test_model_stock():
    cos = np.mean(
        [
            np.dot(TAUS[i].ravel(), TAUS[j].ravel()) / np.linalg.norm(TAUS[i]) / np.linalg.norm(TAUS[j])
            for i in range(N)
            for j in range(i + 1, N)
        ]
    )
    t = N * cos / (1 + (N - 1) * cos)
    assert np.allclose(run("model-stock"), t * sum(MODELS) / N + (1 - t) * BASE)


FISHERS = [np.abs(RNG.standard_normal(SHAPE)) for _ in range(N)]


def test_fisher():
    f = [x + 1e-6 for x in FISHERS]
    assert np.allclose(run("fisher", aux=FISHERS), sum(fi * m for fi, m in zip(f, MODELS)) / sum(f))


def cg(apply, b, x, iters):
    r = b - apply(x)
    p = r.copy()
    rs = np.sum(r * r)
    for _ in range(iters):
        ap = apply(p)
        alpha = rs / np.sum(p * ap)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = np.sum(r * r)
        p = r + rs_new / rs * p
        rs = rs_new
    return x


def test_mats_is_conjugate_gradient_on_the_fisher_system():
    f = [x + 1e-6 for x in FISHERS]
    a, b = sum(f), sum(fi * m for fi, m in zip(f, MODELS))
    assert np.allclose(run("mats", {"iterations": 3}, aux=FISHERS), cg(lambda v: a * v, b, BASE, 3))
    exact = run("mats", {"iterations": 200}, aux=FISHERS)  # converges to Fisher merging
    assert np.allclose(exact, b / a, atol=1e-6)


GRAMS = [(lambda x: x.T @ x)(RNG.standard_normal((20, SHAPE[1]))) for _ in range(N)]


@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_reg_mean(alpha):
    g = [alpha * x + (1 - alpha) * np.diag(np.diag(x)) for x in GRAMS]
    expected = sum(m @ gi for m, gi in zip(MODELS, g)) @ np.linalg.inv(sum(g))
    assert np.allclose(run("reg-mean", {"merge_lambda": alpha}, aux=GRAMS), expected)
    left = [m.T for m in MODELS]  # Conv1D layout: (in, out), the Gram on the left
    got = run("reg-mean", {"merge_lambda": alpha}, models=left, ancestor=None, aux=GRAMS)
    assert np.allclose(got, expected.T)


def test_covariance_mats():
    a, b = sum(GRAMS), sum(m @ g for m, g in zip(MODELS, GRAMS))
    got = run("covariance-mats", {"iterations": 4}, aux=GRAMS)
    assert np.allclose(got, cg(lambda v: v @ a, b, BASE, 4))
    assert np.allclose(
        run("covariance-mats", {"iterations": 100}, aux=GRAMS), b @ np.linalg.inv(a), atol=1e-6
    )


def slerp(a, b, t):
    cos = np.dot(a.ravel(), b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b)
    om = np.arccos(cos)
    return np.sin((1 - t) * om) / np.sin(om) * a + np.sin(t * om) / np.sin(om) * b


def test_slerp_and_multi_slerp():
    a, b = RNG.standard_normal(SHAPE), RNG.standard_normal(SHAPE)
    assert np.allclose(run("slerp", {"t": 0.3}, models=[a, b], ancestor=None), slerp(a, b, 0.3))
    assert np.allclose(run("slerp", {"t": 0.3}, models=[a, 2 * a], ancestor=None), 1.3 * a)  # colinear: lerp
    ms = [RNG.standard_normal(SHAPE) for _ in range(3)]
    expected = slerp(slerp(ms[0], ms[1], 1 / 2), ms[2], 1 / 3)
    assert np.allclose(run("multi-slerp", models=ms, ancestor=None), expected)


def test_lora_variant_merges_products_and_refactors():
    rank = 2
    As = [RNG.standard_normal((rank, 5)) for _ in range(N)]
    Bs = [RNG.standard_normal((6, rank)) for _ in range(N)]
    method = methods.get("lora-average")
    assert method.groups(["x.lora_A", "x.lora_B", "bias"]) == [["x.lora_A", "x.lora_B"], ["bias"]]
    group = {
        "x.lora_A": Inputs("x.lora_A", [torch.tensor(a) for a in As]),
        "x.lora_B": Inputs("x.lora_B", [torch.tensor(b) for b in Bs]),
    }
    out = method.merge_group(group, method.parse_args({}))
    merged = sum(b @ a for a, b in zip(As, Bs)) / N
    u, s, vh = np.linalg.svd(merged)
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]
    assert out["x.lora_A"].shape == (rank, 5) and out["x.lora_B"].shape == (6, rank)
    assert np.allclose(out["x.lora_B"].numpy() @ out["x.lora_A"].numpy(), best)


def test_argument_errors():
    with pytest.raises(ThetaError, match="has no argument bogus"):
        methods.get("ties").parse_args({"bogus": ["1"]})
    with pytest.raises(ThetaError, match="is not float"):
        methods.get("ties").parse_args({"density": ["lots"]})
    with pytest.raises(ThetaError, match="unknown merge method 'nope'"):
        methods.get("nope")
    m = methods.get("ties")
    with pytest.raises(ThetaError, match="needs the models' common ancestor"):
        m.check(3, False, 0, m.parse_args({}))
    f = methods.get("fisher")
    with pytest.raises(ThetaError, match="needs --aux_data"):
        f.check(3, False, 0, f.parse_args({}))
    s = methods.get("slerp")
    with pytest.raises(ThetaError, match="merges 2 models"):
        s.check(3, False, 0, s.parse_args({}))
    a = methods.get("average")
    with pytest.raises(ThetaError, match="weights given 2 times for 3 models"):
        a.check(3, False, 0, a.parse_args({"weights": ["1", "2"]}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "name",
    [
        "average",
        "task-arithmetic",
        "dare-task-arithmetic",
        "ties",
        "della",
        "fisher",
        "covariance-mats",
        "slerp",
    ],
)
def test_cpu_and_cuda_agree(name):
    method = methods.get(name)
    two = name == "slerp"
    models = MODELS[:2] if two else MODELS
    aux = {"fisher": FISHERS, "gram": GRAMS}.get(method.aux_kind)

    def on(device):
        inputs = Inputs(
            "p",
            [torch.tensor(m, dtype=torch.float32, device=device) for m in models],
            torch.tensor(BASE, dtype=torch.float32, device=device),
            [torch.tensor(a, dtype=torch.float32, device=device) for a in aux] if aux else None,
            3,
        )
        return method.merge(inputs, method.parse_args({})).cpu().numpy()

    assert np.allclose(on("cpu"), on("cuda"), atol=1e-5)
