"""Spherical interpolation of parameters: SLERP for two models and its many-model form."""

import math

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, weights_for
from git_theta_merge_cli.methods.linear import WEIGHTS

_COLINEAR = 0.9995


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """sin((1-t) W)/sin W * a + sin(t W)/sin W * b, W the angle between a and b (flattened);
    linear interpolation when they are (anti)colinear or either is zero (Shoemake 1985)."""
    na = float(torch.sum(a * a, dtype=torch.float64)) ** 0.5
    nb = float(torch.sum(b * b, dtype=torch.float64)) ** 0.5
    if na == 0 or nb == 0:
        return a.mul(1 - t).add_(b, alpha=t)
    cos = float(torch.sum(a * b, dtype=torch.float64)) / (na * nb)
    if abs(cos) > _COLINEAR:
        return a.mul(1 - t).add_(b, alpha=t)
    omega = math.acos(max(-1.0, min(1.0, cos)))
    s = math.sin(omega)
    return a.mul(math.sin((1 - t) * omega) / s).add_(b, alpha=math.sin(t * omega) / s)


class Slerp(MergeMethod):
    """theta = slerp(theta_1, theta_2, t) per parameter."""

    name = "slerp"
    description = "spherical interpolation between two models"
    args = (Arg("t", float, 0.5, "0 gives the first model, 1 the second"),)
    min_models = max_models = 2

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 <= args["t"] <= 1.0:
            raise ThetaError("--x:t must be in [0, 1]")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        return slerp(inputs.models[0], inputs.models[1], args["t"])


class MultiSlerp(MergeMethod):
    """Many-model SLERP, incrementally: r_1 = theta_1, r_k = slerp(r_(k-1), theta_k, w_k / sum_(j<=k) w_j);
    with two models it is slerp(theta_1, theta_2, w_2 / (w_1 + w_2))."""

    name = "multi-slerp"
    description = "weighted spherical interpolation of many models"
    args = (WEIGHTS,)

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        w = weights_for(args, len(inputs.models))
        result, acc = inputs.models[0], w[0]
        for wk, m in zip(w[1:], inputs.models[1:]):
            acc += wk
            result = slerp(result, m, wk / acc)
        return result
