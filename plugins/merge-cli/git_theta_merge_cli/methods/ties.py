"""Sign-consensus merges of sparsified task vectors: TIES, DARE-style DELLA, Model Breadcrumbs."""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs
from git_theta_merge_cli.methods.consensus import SignElection
from git_theta_merge_cli.methods.generalized import GeneralizedTaskArithmetic
from git_theta_merge_cli.methods.linear import LAMBDA
from git_theta_merge_cli.methods.sparsify import Magnitude, Outliers, Ranked


def sign_number(value: str | None) -> float | None:
    """--x:global_majority_sign as the original's number (+1/-1), or None for a file path."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Ties(GeneralizedTaskArithmetic):
    """TIES-Merging (Yadav et al. 2023): trim each tau_i to its top-`density` entries by magnitude,
    elect gamma = sign(sum_i trimmed tau_i), theta = theta_0 + lambda * disjoint_mean(tau, gamma).

    Trimming and sign election are per parameter (block); with --x:global_majority_sign=FILE
    (written by git-theta-merge-majority-sign) thresholds come from whole task vectors and the
    sign from that pass, as in the paper.

    The original plug-in's form: --aux_data files of task vectors already trimmed by the user (one
    per model); gamma = sign of their sum, where it is zero the majority sign (--x:global_majority_sign
    as a number, +1/-1, else this parameter's), theta = theta_0 + lambda * disjoint mean. lambda
    defaults to 0.1, the original's default.
    """

    name = "ties"
    description = "trim, elect sign, disjoint mean of task vectors"
    args = (
        Arg("merge_lambda", float, 0.1, "scale of the merged task vector"),
        Arg("density", float, 0.2, "share of each task vector kept (top magnitudes)"),
        Arg(
            "global_majority_sign",
            str,
            None,
            "file from git-theta-merge-majority-sign (global trim + sign), or +1/-1 (sign where the vote is 0)",
        ),
    )
    aux_kind = "task-vector"
    aux_required = False

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 < args["density"] <= 1.0:
            raise ThetaError("--x:density must be in (0, 1]")
        if n_aux and n_aux != n_models:
            raise ThetaError(f"ties: give one --aux_data task vector per model ({n_models}), got {n_aux}")

    streams_models = True  # models arrive one at a time; trimmed task vectors are kept sparse

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "never" if has_aux else "with-ancestor"  # user-trimmed task vectors need not be zero

    def sparsifier(self, args: dict, inputs: Inputs) -> Magnitude:
        glob = inputs.extra.get("global_majority_sign")
        return Magnitude(args["density"], glob["thresholds"] if glob else None)

    def consensus(self, args: dict, inputs: Inputs) -> SignElection:
        number = sign_number(args["global_majority_sign"])
        glob = inputs.extra.get("global_majority_sign")
        if glob:
            return SignElection(glob["sign"](inputs.name).to(inputs.ancestor.device, inputs.ancestor.dtype))
        return SignElection(fill=number is not None, number=number)

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        if inputs.aux is None:
            return super().merge(inputs, args)
        # the original's form: the aux files are the trimmed task vectors, the vote is filled
        consensus = SignElection(fill=True, number=sign_number(args["global_majority_sign"]))
        return consensus(inputs.ancestor, inputs.aux, None, args["merge_lambda"])


class Breadcrumbs(GeneralizedTaskArithmetic):
    """Model Breadcrumbs (Davari & Belilovsky 2024): in each tau_i drop the `gamma` share of largest
    magnitudes (outliers) and keep the next `density` share; theta = theta_0 + lambda * sum_i masked tau_i."""

    name = "breadcrumbs"
    description = "task arithmetic on task vectors without their largest and smallest entries"
    args = (
        LAMBDA,
        Arg("density", float, 0.9, "share of entries kept after the outliers"),
        Arg("gamma", float, 0.01, "share of the largest-magnitude entries dropped"),
    )

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not (0 <= args["gamma"] < 1 and 0 < args["density"] <= 1 and args["gamma"] + args["density"] <= 1):
            raise ThetaError("--x:gamma and --x:density must be shares with gamma + density <= 1")

    def sparsifier(self, args: dict, inputs: Inputs) -> Outliers:
        return Outliers(args["gamma"], args["density"])


class Della(GeneralizedTaskArithmetic):
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

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        lo, hi = args["density"] - args["epsilon"] / 2, args["density"] + args["epsilon"] / 2
        if not (0 < lo and hi <= 1):
            raise ThetaError("--x:density -/+ epsilon/2 must stay within (0, 1]")

    def sparsifier(self, args: dict, inputs: Inputs) -> Ranked:
        return Ranked(args["density"], args["epsilon"], inputs.generator())

    def consensus(self, args: dict, inputs: Inputs) -> SignElection:
        return SignElection()
