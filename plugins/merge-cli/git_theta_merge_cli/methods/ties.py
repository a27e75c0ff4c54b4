"""Sign-consensus merges of sparsified task vectors: TIES, DARE-style DELLA, Model Breadcrumbs."""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, task_vectors
from git_theta_merge_cli.methods.linear import LAMBDA


def kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest entry (k >= 1) of a flat tensor."""
    n = values.numel()
    return float(torch.kthvalue(values.reshape(-1).cpu(), n - k + 1).values)


def trim_top(tau: torch.Tensor, density: float, threshold: float | None = None) -> torch.Tensor:
    """Zero all but the `density` share of entries largest in magnitude (in place); ties at the
    threshold are kept. A given `threshold` (global, from the majority-sign pre-pass) wins."""
    if threshold is None:
        k = int(round(density * tau.numel()))
        if k >= tau.numel():
            return tau
        if k <= 0:
            return tau.zero_()
        threshold = kth_largest(tau.abs(), k)
    return tau.mul_(tau.abs() >= threshold)


def elect_and_merge(taus: list[torch.Tensor], sign: torch.Tensor | None = None) -> torch.Tensor:
    """Disjoint mean: gamma = sign(sum_i tau_i) (or a given sign); per entry, the mean of the
    tau_i that are non-zero and agree with gamma (0 where none do)."""
    if sign is None:
        total = taus[0].clone()
        for t in taus[1:]:
            total.add_(t)
        sign = torch.sign(total)
        del total
    num = torch.zeros_like(taus[0])
    count = torch.zeros_like(taus[0])
    for t in taus:
        agree = (torch.sign(t) == sign) & (t != 0)
        num.add_(t * agree)
        count.add_(agree)
    return num.div_(count.clamp_(min=1))


class Ties(MergeMethod):
    """TIES-Merging (Yadav et al. 2023): trim each tau_i to its top-`density` entries by magnitude,
    elect gamma = sign(sum_i trimmed tau_i), theta = theta_0 + lambda * disjoint_mean(tau, gamma).

    Trimming and sign election are per parameter (block); with --x:global_majority_sign=FILE
    (written by git-theta-merge-majority-sign) thresholds come from whole task vectors and the
    sign from that pass, as in the paper.
    """

    name = "ties"
    description = "trim, elect sign, disjoint mean of task vectors"
    args = (
        LAMBDA,
        Arg("density", float, 0.2, "share of each task vector kept (top magnitudes)"),
        Arg(
            "global_majority_sign", str, None, "file from git-theta-merge-majority-sign (global trim + sign)"
        ),
    )
    needs_ancestor = True

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 < args["density"] <= 1.0:
            raise ThetaError("--x:density must be in (0, 1]")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        glob = inputs.extra.get("global_majority_sign")
        thresholds = glob["thresholds"] if glob else [None] * len(inputs.models)
        taus = [trim_top(t, args["density"], th) for t, th in zip(task_vectors(inputs), thresholds)]
        sign = glob["sign"](inputs.name).to(taus[0].device, taus[0].dtype) if glob else None
        merged = elect_and_merge(taus, sign)
        return inputs.ancestor.add_(merged, alpha=args["merge_lambda"])


class Breadcrumbs(MergeMethod):
    """Model Breadcrumbs (Davari & Belilovsky 2024): in each tau_i drop the `gamma` share of largest
    magnitudes (outliers) and keep the next `density` share; theta = theta_0 + lambda * sum_i masked tau_i."""

    name = "breadcrumbs"
    description = "task arithmetic on task vectors without their largest and smallest entries"
    args = (
        LAMBDA,
        Arg("density", float, 0.9, "share of entries kept after the outliers"),
        Arg("gamma", float, 0.01, "share of the largest-magnitude entries dropped"),
    )
    needs_ancestor = True

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not (0 <= args["gamma"] < 1 and 0 < args["density"] <= 1 and args["gamma"] + args["density"] <= 1):
            raise ThetaError("--x:gamma and --x:density must be shares with gamma + density <= 1")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        total = None
        for tau in task_vectors(inputs):
            n = tau.numel()
            mag = tau.abs()
            hi_k, lo_k = int(round(args["gamma"] * n)), int(round((args["gamma"] + args["density"]) * n))
            keep = torch.ones_like(tau, dtype=torch.bool)
            if hi_k > 0:
                keep &= mag < kth_largest(mag, hi_k)
            if lo_k < n:
                keep &= mag >= kth_largest(mag, max(lo_k, 1))
            tau.mul_(keep)
            total = tau if total is None else total.add_(tau)
        return inputs.ancestor.add_(total, alpha=args["merge_lambda"])


class Della(MergeMethod):
    """DELLA-Merging (Deep et al. 2024): drop entries of tau_i at random with keep probability rising with
    magnitude rank, p_keep = density + epsilon * (rank / (n - 1) - 1/2), rescale kept ones by 1/p_keep,
    then elect sign and take the disjoint mean as TIES; theta = theta_0 + lambda * merged."""

    name = "della"
    description = "magnitude-ranked random drop + rescale, then TIES sign election"
    args = (
        LAMBDA,
        Arg("density", float, 0.7, "mean keep probability"),
        Arg("epsilon", float, 0.1, "spread of keep probabilities from smallest to largest magnitude"),
    )
    needs_ancestor = True

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        lo, hi = args["density"] - args["epsilon"] / 2, args["density"] + args["epsilon"] / 2
        if not (0 < lo and hi <= 1):
            raise ThetaError("--x:density -/+ epsilon/2 must stay within (0, 1]")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        g = inputs.generator()
        taus = []
        for tau in task_vectors(inputs):
            n = tau.numel()
            ranks = torch.empty(n, dtype=torch.float32)
            ranks[torch.argsort(tau.reshape(-1).abs().cpu(), stable=True)] = torch.arange(
                n, dtype=torch.float32
            )
            p = args["density"] + args["epsilon"] * (ranks / max(n - 1, 1) - 0.5)
            keep = torch.rand(n, generator=g) < p
            scale = (keep / p).reshape(tau.shape).to(tau.device, tau.dtype)
            taus.append(tau.mul_(scale))
        return inputs.ancestor.add_(elect_and_merge(taus), alpha=args["merge_lambda"])
