"""Generalized task arithmetic: every sparsifier x consensus pair against a numpy formula, and
what the merge driver's strategies and the merge CLI's methods share."""

import numpy as np
import pytest
import torch
from git_theta_merge_cli import methods
from git_theta_merge_cli.methods import sparse
from git_theta_merge_cli.methods.base import Inputs, MergeMethod
from git_theta_merge_cli.methods.consensus import SignElection, Sum
from git_theta_merge_cli.methods.generalized import GeneralizedTaskArithmetic
from git_theta_merge_cli.methods.sparsify import Magnitude, Outliers, Random, Ranked

from git_theta import plugins
from git_theta.merges.base import MergeStrategy, Sides
from git_theta.merges.declaration import Arg, Declared
from git_theta.merges.task_arithmetic import TaskArithmeticMerge, keep_all

RNG = np.random.default_rng(3)
SHAPE, SEED, LAMBDA = (9, 7), 11, 0.6
BASE = RNG.standard_normal(SHAPE)
TAUS = [RNG.standard_normal(SHAPE) * 0.1 for _ in range(3)]
TAUS[1][0, :3] = 0.0  # exact zeros: they never vote and never count in the mean
WEIGHTS = [1.0, 0.5, 2.0]


def draws(size):
    """The uniform draws a seeded merge makes, one model after another."""
    g = torch.Generator().manual_seed(SEED)
    return [torch.rand(size, generator=g).numpy().astype(np.float64) for _ in TAUS]


def magnitude(density=0.3):
    def ref(taus):
        out = []
        for tau in taus:
            k = int(round(density * tau.size))
            kth = np.sort(np.abs(tau).reshape(-1))[::-1][k - 1]
            out.append(np.where(np.abs(tau) >= kth, tau, 0.0))
        return out

    return (lambda inputs: Magnitude(density)), ref


def random(p=0.4):
    def ref(taus):
        return [tau * (u >= p) / (1 - p) for tau, u in zip(taus, draws(SHAPE))]

    return (lambda inputs: Random(p, inputs.generator())), ref


def outliers(gamma=0.1, density=0.6):
    def ref(taus):
        out = []
        for tau in taus:
            order = np.sort(np.abs(tau).reshape(-1))[::-1]
            hi, lo = int(round(gamma * tau.size)), int(round((gamma + density) * tau.size))
            out.append(tau * ((np.abs(tau) < order[hi - 1]) & (np.abs(tau) >= order[lo - 1])))
        return out

    return (lambda inputs: Outliers(gamma, density)), ref


def ranked(density=0.6, epsilon=0.3):
    def ref(taus):
        out, n = [], TAUS[0].size
        for tau, u in zip(taus, draws(n)):
            ranks = np.empty(n)
            ranks[np.argsort(np.abs(tau).reshape(-1), kind="stable")] = np.arange(n)
            p = density + epsilon * (ranks / (n - 1) - 0.5)
            out.append((tau.reshape(-1) * (u < p) / p).reshape(SHAPE))
        return out

    return (lambda inputs: Ranked(density, epsilon, inputs.generator())), ref


def none():
    return (lambda inputs: keep_all), list


SPARSIFIERS = {"none": none, "magnitude": magnitude, "random": random, "outliers": outliers, "ranked": ranked}


def summed(taus):
    return sum(taus)


def disjoint_mean(taus):
    sign = np.sign(sum(taus))
    agree = [(np.sign(t) == sign) & (t != 0) for t in taus]
    return sum(t * a for t, a in zip(taus, agree)) / np.maximum(sum(a.astype(float) for a in agree), 1)


CONSENSUS = {"sum": (Sum, summed), "sign": (SignElection, disjoint_mean)}


class Composed(GeneralizedTaskArithmetic):
    """A method made of the parts under test."""

    name = "composed"

    def __init__(self, make_sparsifier, make_consensus, weights):
        self.make_sparsifier, self.make_consensus, self.w = make_sparsifier, make_consensus, weights

    def sparsifier(self, args, inputs):
        return self.make_sparsifier(inputs)

    def consensus(self, args, inputs):
        return self.make_consensus()

    def weights(self, args, n_models):
        return self.w


@pytest.mark.parametrize("block", [sparse.BLOCK, 4])  # 4: every tensor spans many blocks
@pytest.mark.parametrize("weights", [None, WEIGHTS])
@pytest.mark.parametrize("consensus", sorted(CONSENSUS))
@pytest.mark.parametrize("sparsifier", sorted(SPARSIFIERS))
def test_every_sparsifier_and_consensus_match_numpy(sparsifier, consensus, weights, block, monkeypatch):
    monkeypatch.setattr(sparse, "BLOCK", block)
    make_sparsifier, ref_sparsify = SPARSIFIERS[sparsifier]()
    make_consensus, ref_combine = CONSENSUS[consensus]
    method = Composed(make_sparsifier, make_consensus, weights)
    inputs = Inputs("p", [torch.tensor(BASE + t) for t in TAUS], torch.tensor(BASE), None, SEED)
    got = method.merge(inputs, {"merge_lambda": LAMBDA}).numpy()
    kept = ref_sparsify([(BASE + t) - BASE for t in TAUS])
    kept = [w * k for w, k in zip(weights or [1.0] * len(kept), kept)]
    atol = 1e-6 if sparsifier == "ranked" else 1e-12  # DELLA's keep probabilities are float32
    np.testing.assert_allclose(got, BASE + LAMBDA * ref_combine(kept), rtol=0, atol=atol)


@pytest.mark.parametrize(
    "name, sparsifier, consensus",
    [
        ("task-arithmetic", None, Sum),
        ("dare-task-arithmetic", Random, Sum),
        ("ties", Magnitude, SignElection),
        ("breadcrumbs", Outliers, Sum),
        ("della", Ranked, SignElection),
    ],
)
def test_task_vector_methods_are_the_generalized_one(name, sparsifier, consensus):
    method = methods.get(name)
    inputs = Inputs("p", [], torch.tensor(BASE), None, SEED)
    args = method.parse_args({})
    assert isinstance(method, GeneralizedTaskArithmetic)
    got = method.sparsifier(args, inputs)
    assert got is keep_all if sparsifier is None else isinstance(got, sparsifier)
    assert isinstance(method.consensus(args, inputs), consensus)


def test_both_hierarchies_share_declaration_and_task_arithmetic():
    strategy = plugins.merges.get("task-arithmetic")()
    method = methods.get("task-arithmetic")
    for merge, base in ((strategy, MergeStrategy), (method, MergeMethod)):
        assert isinstance(merge, Declared) and isinstance(merge, TaskArithmeticMerge)
        assert isinstance(merge, base)
        assert all(isinstance(a, Arg) for a in merge.args)
    anc, ours, theirs = BASE, BASE + TAUS[0], BASE + TAUS[1]
    driver = strategy.merge(Sides("p", anc, ours, theirs), merge_lambda=LAMBDA)
    cli = method.merge(
        Inputs("p", [torch.tensor(ours), torch.tensor(theirs)], torch.tensor(anc)),
        method.parse_args({"merge_lambda": [str(LAMBDA), str(LAMBDA)]}),
    )
    np.testing.assert_allclose(driver, cli.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(driver, anc + LAMBDA * (TAUS[0] + TAUS[1]), rtol=0, atol=1e-12)


def test_shared_argument_conversion():
    flag = Arg("fast", bool, False, "a switch")
    assert [flag.convert(v) for v in ("on", "No", "TRUE", "0")] == [True, False, True, False]
    with pytest.raises(ValueError):
        flag.convert("maybe")
    assert Arg("w", float, 0.5, "a weight").convert("0.25") == 0.25
    strategy = plugins.merges.get("weighted-average")()
    assert strategy.unknown_args({"weight": "1", "b": "2", "a": "3"}) == ["a", "b"]
