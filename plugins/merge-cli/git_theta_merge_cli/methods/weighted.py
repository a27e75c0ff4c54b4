"""Merges weighted by per-model statistics: Fisher merging, RegMean and MaTS (conjugate gradient)."""

import json

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, merge_lambdas, weights_for
from git_theta_merge_cli.methods.linear import WEIGHTS, lambdas_arg

MERGE_LOG = Arg(
    "merge_log", str, None, "append each parameter's conjugate-gradient residuals (JSON lines) here"
)


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
    """theta = sum_i w_i F_i theta_i / sum_i w_i F_i  with F_i the diagonal Fisher
    (Matena & Raffel 2022). --aux_data: one file per model holding F_i for every parameter.
    w: --x:weights, or the original's --x:merge_lambda (one per model, or one for all; with two
    models l gives (l, 1 - l)); entries where sum_i w_i F_i is 0 come out 0, as in the original.
    --x:fisher_floor adds a constant to every F_i (default 0: the original's exact formula)."""

    name = "fisher"
    description = "average weighted by diagonal Fisher information"
    args = (
        WEIGHTS,
        lambdas_arg(None, "the original's per-model scale of the Fisher"),
        Arg("fisher_floor", float, 0.0, "added to every Fisher entry"),
    )
    aux_kind = "fisher"

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if args["weights"] and args["merge_lambda"]:
            raise ThetaError("give --x:weights or --x:merge_lambda, not both")

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "always"  # a weighted average (where every Fisher is 0 the original writes 0)

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        n = len(inputs.models)
        w = merge_lambdas(args["merge_lambda"], n) if args["merge_lambda"] else weights_for(args, n)
        num = torch.zeros_like(inputs.models[0])
        den = torch.zeros_like(inputs.models[0])
        for wi, m, f in zip(w, inputs.models, inputs.aux):
            f = f.add(args["fisher_floor"]).mul_(wi)
            num.add_(m.mul_(f))
            den.add_(f)
        return num.div_(torch.where(den == 0, torch.ones_like(den), den))


class RegMean(MergeMethod):
    """W = (sum_i W_i G'_i)(sum_i G'_i)^-1,  G'_i = a G_i + (1 - a) diag(G_i),  a = merge_lambda
    (Jin et al. 2023). --aux_data: Gram matrices X_i^T X_i of each linear layer's inputs, keyed by
    the weight's name; parameters without one (biases, norms) are averaged."""

    name = "reg-mean"
    description = "least-squares merge of linear layers from their input Gram matrices"
    args = (Arg("merge_lambda", float, 0.5, "scale a of the Gram matrices' off-diagonal entries"),)
    aux_kind = "gram"
    aux_required = True

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "always"  # the exact least-squares solution of equal weights is that weight

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


def conjugate_gradient(
    apply, b: torch.Tensor, x: torch.Tensor, iterations: int, rtol: float = 0.0
) -> torch.Tensor:
    """`iterations` steps of CG for apply(x) = b (apply symmetric positive definite), from x;
    stops early once ||b - apply(x)|| <= rtol ||b|| (scipy's cg rule; rtol 0: never)."""
    r = b - apply(x)
    p = r.clone()
    rs = torch.sum(r * r, dtype=torch.float64)
    stop = rtol * rtol * float(torch.sum(b * b, dtype=torch.float64))
    for _ in range(iterations):
        if rs <= stop:
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


def log_residuals(path: str | None, name: str, apply, b: torch.Tensor, x0: torch.Tensor, x, iterations, rtol):
    """Append {name: {exit_code, initial_error, final_error}} to --x:merge_log (the original's record)."""
    if not path:
        return
    initial = float(torch.linalg.vector_norm((apply(x0) - b).double()))
    final = float(torch.linalg.vector_norm((apply(x) - b).double()))
    converged = final <= rtol * float(torch.linalg.vector_norm(b.double()))
    record = {"exit_code": 0 if converged else iterations, "initial_error": initial, "final_error": final}
    with open(path, "a") as f:
        f.write(json.dumps({name: record}) + "\n")


class Mats(MergeMethod):
    """MaTS (Tam et al. 2024): solve (sum_i F_i) theta = sum_i F_i theta_i by `iterations` steps of
    conjugate gradient from the ancestor (--ancestor) or the average. F_i is either a diagonal
    Fisher shaped like the parameter (elementwise product, plus fisher_floor), or, as in the
    original plug-in, a [rows, rows] matrix that left-multiplies the parameter (CG stops at
    scipy's rtol 1e-5, as the original's scipy cg does). aux_form=auto reads every file as
    matrices when any entry is shaped otherwise than its parameter (a square parameter's [rows, rows]
    aux then is a matrix too), else as diagonal Fishers. Parameters without aux data are averaged."""

    name = "mats"
    description = "conjugate-gradient merge in the models' Fisher-weighted parameter subspaces"
    args = (
        Arg("iterations", int, 10, "conjugate gradient steps"),
        Arg("fisher_floor", float, 1e-6, "added to every diagonal Fisher entry"),
        Arg("aux_form", str, "auto", "auto, diagonal (shaped like the parameter) or matrix ([rows, rows])"),
        MERGE_LOG,
    )
    aux_kind = "fisher"
    aux_required = False

    @staticmethod
    def aux_fits(aux_shape: tuple, shape: tuple) -> bool:
        return aux_shape == shape or (len(shape) >= 1 and aux_shape == (shape[0], shape[0]))

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if args["aux_form"] not in ("auto", "diagonal", "matrix"):
            raise ThetaError("--x:aux_form must be auto, diagonal or matrix")
        if n_aux != n_models:
            raise ThetaError(
                f"{self.name} needs --aux_data with one file per model ({n_models}), got {n_aux}"
            )

    def settle_args(self, model, aux: list, args: dict) -> dict:
        """aux_form=auto decides once for all the aux files: matrix as soon as one entry is shaped
        otherwise than its parameter (the original's files: [rows, rows] for every parameter, so
        its square parameters are read as matrices too), else diagonal."""
        if args["aux_form"] != "auto":
            return args
        matrix = any(
            tuple(a.shape(n)) != tuple(model.shape(n)) for a in aux for n in a.names if n in model.names
        )
        return {**args, "aux_form": "matrix" if matrix else "diagonal"}

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "with-ancestor" if has_ancestor else "always"  # CG from their mean starts at the solution

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        if inputs.aux is None:
            return _mean(inputs.models)
        models, aux = inputs.models, inputs.aux
        shape = tuple(models[0].shape)
        matrix = args["aux_form"] == "matrix" or (
            args["aux_form"] == "auto" and tuple(aux[0].shape) != shape and len(shape) >= 1
        )
        x0 = inputs.ancestor.clone() if inputs.ancestor is not None else _mean(models)
        if matrix:
            total = sum(aux[1:], aux[0].clone())
            b = sum((f @ m for f, m in zip(aux[1:], models[1:])), aux[0] @ models[0])
            apply, rtol = (lambda v: total @ v), 1e-5
        else:
            fs = [f.add(args["fisher_floor"]) for f in aux]
            total = sum(fs[1:], fs[0].clone())
            b = sum((m * f for m, f in zip(models[1:], fs[1:])), models[0] * fs[0])
            apply, rtol = (lambda v: total * v), 0.0
        x = conjugate_gradient(apply, b, x0, args["iterations"], rtol)
        log_residuals(args["merge_log"], inputs.name, apply, b, x0, x, args["iterations"], rtol)
        return x


class CovarianceMats(MergeMethod):
    """MaTS with input covariances (Tam et al. 2024): solve W (sum_i G_i) = sum_i W_i G_i (Linear
    layout; G_i on the left for Conv1D) by conjugate gradient from the ancestor or the average,
    stopping early at scipy's rtol 1e-5 as the original plug-in's scipy cg does.
    Parameters without a Gram matrix are averaged."""

    name = "covariance-mats"
    description = "conjugate-gradient RegMean objective (MaTS with input covariances)"
    args = (Arg("iterations", int, 10, "conjugate gradient steps"), MERGE_LOG)
    aux_kind = "gram"

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "with-ancestor" if has_ancestor else "always"  # CG from their mean starts at the solution

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
        apply = lambda v: _times(v, total, side)  # noqa: E731
        x = conjugate_gradient(apply, b, x0, args["iterations"], 1e-5)  # the original's scipy cg rule
        log_residuals(args["merge_log"], inputs.name, apply, b, x0, x, args["iterations"], 1e-5)
        return x
