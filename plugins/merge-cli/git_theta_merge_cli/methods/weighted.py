"""Merges weighted by per-model statistics: Fisher merging, RegMean and MaTS (conjugate gradient)."""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, weights_for
from git_theta_merge_cli.methods.linear import WEIGHTS


def _mean(models: list[torch.Tensor]) -> torch.Tensor:
    out = models[0].clone()
    for m in models[1:]:
        out.add_(m)
    return out.div_(len(models))


def gram_side(weight: torch.Tensor, gram: torch.Tensor, name: str) -> str:
    """'right' when the Gram multiplies the weight from the right (Linear: (out, in) @ (in, in)),
    'left' when from the left (GPT-2 Conv1D: (in, in) @ (in, out))."""
    if weight.dim() != 2 or gram.dim() != 2 or gram.shape[0] != gram.shape[1]:
        raise ThetaError(f"aux data for {name!r}: a Gram matrix must be square and the parameter 2-D")
    if weight.shape[1] == gram.shape[0]:
        return "right"
    if weight.shape[0] == gram.shape[0]:
        return "left"
    raise ThetaError(f"aux data for {name!r}: Gram {list(gram.shape)} fits no side of {list(weight.shape)}")


def _times(w: torch.Tensor, g: torch.Tensor, side: str) -> torch.Tensor:
    return w @ g if side == "right" else g @ w


class Fisher(MergeMethod):
    """theta = sum_i w_i F_i theta_i / sum_i w_i F_i  with F_i the diagonal Fisher (+ floor)
    (Matena & Raffel 2022). --aux_data: one file per model holding F_i for every parameter."""

    name = "fisher"
    description = "average weighted by diagonal Fisher information"
    args = (WEIGHTS, Arg("fisher_floor", float, 1e-6, "added to every Fisher entry"))
    aux_kind = "fisher"

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        w = weights_for(args, len(inputs.models))
        num = torch.zeros_like(inputs.models[0])
        den = torch.zeros_like(inputs.models[0])
        for wi, m, f in zip(w, inputs.models, inputs.aux):
            f = f.add(args["fisher_floor"]).mul_(wi)
            num.add_(m.mul_(f))
            den.add_(f)
        return num.div_(den)


class RegMean(MergeMethod):
    """W = (sum_i W_i G'_i)(sum_i G'_i)^-1,  G'_i = a G_i + (1 - a) diag(G_i),  a = merge_lambda
    (Jin et al. 2023). --aux_data: Gram matrices X_i^T X_i of each linear layer's inputs, keyed by
    the weight's name; parameters without one (biases, norms) are averaged."""

    name = "reg-mean"
    description = "least-squares merge of linear layers from their input Gram matrices"
    args = (Arg("merge_lambda", float, 1.0, "scale a of the Gram matrices' off-diagonal entries"),)
    aux_kind = "gram"
    aux_required = True

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        if inputs.aux is None:
            return _mean(inputs.models)
        a = args["merge_lambda"]
        grams = [g.mul(a).add_(torch.diag_embed(torch.diagonal(g)), alpha=1 - a) for g in inputs.aux]
        side = gram_side(inputs.models[0], grams[0], inputs.name)
        total = sum(grams[1:], grams[0].clone())
        rhs = sum(
            (_times(m, g, side) for m, g in zip(inputs.models[1:], grams[1:])),
            _times(inputs.models[0], grams[0], side),
        )
        if side == "right":  # W total = rhs  ->  total^T W^T = rhs^T
            return torch.linalg.solve(total.double().T, rhs.double().T).T.to(rhs.dtype)
        return torch.linalg.solve(total.double(), rhs.double()).to(rhs.dtype)


def conjugate_gradient(apply, b: torch.Tensor, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """`iterations` steps of CG for apply(x) = b (apply symmetric positive definite), from x."""
    r = b - apply(x)
    p = r.clone()
    rs = torch.sum(r * r, dtype=torch.float64)
    for _ in range(iterations):
        if rs <= 0:
            break
        ap = apply(p)
        denom = torch.sum(p * ap, dtype=torch.float64)
        if denom <= 0:
            break
        alpha = float(rs / denom)
        x = x.add(p, alpha=alpha)
        r = r.sub(ap, alpha=alpha)
        rs_new = torch.sum(r * r, dtype=torch.float64)
        p = r.add(p, alpha=float(rs_new / rs))
        rs = rs_new
    return x


class Mats(MergeMethod):
    """MaTS (Tam et al. 2024): solve (sum_i F_i) theta = sum_i F_i theta_i by `iterations` steps of
    conjugate gradient from the ancestor (--ancestor) or the average; F_i the diagonal Fisher."""

    name = "mats"
    description = "conjugate-gradient merge in the models' Fisher-weighted parameter subspaces"
    args = (
        Arg("iterations", int, 10, "conjugate gradient steps"),
        Arg("fisher_floor", float, 1e-6, "added to every Fisher entry"),
    )
    aux_kind = "fisher"

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        fs = [f.add(args["fisher_floor"]) for f in inputs.aux]
        total = sum(fs[1:], fs[0].clone())
        b = sum((m * f for m, f in zip(inputs.models[1:], fs[1:])), inputs.models[0] * fs[0])
        x0 = inputs.ancestor.clone() if inputs.ancestor is not None else _mean(inputs.models)
        return conjugate_gradient(lambda v: total * v, b, x0, args["iterations"])


class CovarianceMats(MergeMethod):
    """MaTS with input covariances (Tam et al. 2024): solve W (sum_i G_i) = sum_i W_i G_i (Linear
    layout; G_i on the left for Conv1D) by conjugate gradient from the ancestor or the average.
    Parameters without a Gram matrix are averaged."""

    name = "covariance-mats"
    description = "conjugate-gradient RegMean objective (MaTS with input covariances)"
    args = (Arg("iterations", int, 10, "conjugate gradient steps"),)
    aux_kind = "gram"

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        if inputs.aux is None:
            return _mean(inputs.models)
        side = gram_side(inputs.models[0], inputs.aux[0], inputs.name)
        total = sum(inputs.aux[1:], inputs.aux[0].clone())
        b = sum(
            (_times(m, g, side) for m, g in zip(inputs.models[1:], inputs.aux[1:])),
            _times(inputs.models[0], inputs.aux[0], side),
        )
        x0 = inputs.ancestor.clone() if inputs.ancestor is not None else _mean(inputs.models)
        return conjugate_gradient(lambda v: _times(v, total, side), b, x0, args["iterations"])
