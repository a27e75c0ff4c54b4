"""Each strategy's numbers equal numpy's formula; arguments are typed and validated."""

import numpy as np
import pytest

from git_theta import plugins
from git_theta.errors import ThetaError
from git_theta.merges.base import BOTH_ADDED, BOTH_MODIFIED, DELETED_OURS, Sides
from git_theta.merges.plan import parse_choice

rng = np.random.default_rng(0)
ANC, A, B = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3))
S = Sides("w", ANC, A, B)
o, a, b = (x.astype(np.float64) for x in (ANC, A, B))


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("take_us", a),
        ("take_them", b),
        ("take_original", o),
        ("average-ours-theirs", (a + b) / 2),
        ("average-all", (o + a + b) / 3),
        ("average-ours-original", (o + a) / 2),
        ("average-theirs-original", (o + b) / 2),
        ("weighted-average:weight=0.25", 0.25 * a + 0.75 * b),
        ("task-arithmetic:merge_lambda=0.5", o + 0.5 * ((a - o) + (b - o))),
    ],
)
def test_numbers_match_numpy(spec, expected):
    choice = parse_choice(spec, "test")
    out = choice.strategy.merge(S, **choice.args)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected.astype(np.float32))


def test_integer_parameters_round_back():
    s = Sides("n", np.array([0, 10]), np.array([1, 11]), np.array([2, 12]))
    out = plugins.merges.get("average-ours-theirs")().merge(s)
    assert out.dtype == s.ours.dtype and out.tolist() == [2, 12]  # rint(1.5)=2, rint(11.5)=12


def test_applicability_and_validation():
    avg = plugins.merges.get("average-all")()
    assert avg.applicable(BOTH_MODIFIED, {"ancestor", "ours", "theirs"})
    assert not avg.applicable(BOTH_ADDED, {"ours", "theirs"})
    assert not plugins.merges.get("average-ours-theirs")().applicable(
        BOTH_MODIFIED, {"ancestor", "ours", "theirs"}, same_shape=False
    )
    assert plugins.merges.get("take_them")().applicable(DELETED_OURS, {"ancestor", "theirs"})
    with pytest.raises(ThetaError, match="no argument"):
        parse_choice("weighted-average:alpha=1", "x")
    with pytest.raises(ThetaError, match="is not a float"):
        parse_choice("weighted-average:weight=heavy", "x")
    with pytest.raises(ThetaError, match="unknown merge strategy"):
        parse_choice("median", "x")


def test_context_rules(monkeypatch):
    monkeypatch.setenv("GIT_THETA_MERGE_CONTEXT", "*.bias=theirs;head.*=ours")
    ctx = plugins.merges.get("context")()
    assert ctx.side_for("layers.0.bias") == "theirs" and ctx.side_for("head.weight") == "ours"
    assert ctx.side_for("embed.weight") is None
    np.testing.assert_array_equal(ctx.merge(Sides("x.bias", ANC, A, B)), B)
