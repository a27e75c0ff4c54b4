"""Linear merges: (weighted) averages and task-vector sums."""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import (
    Arg,
    Inputs,
    MergeMethod,
    merge_lambdas,
    task_vectors,
    weights_for,
)
from git_theta_merge_cli.methods.consensus import weighted_sum
from git_theta_merge_cli.methods.generalized import GeneralizedTaskArithmetic
from git_theta_merge_cli.methods.sparsify import Random

WEIGHTS = Arg("weights", float, None, "one weight per model (repeat the flag); default equal", many=True)
LAMBDA = Arg("merge_lambda", float, 1.0, "scale of the summed task vectors")
SEED = Arg("seed", int, None, "seed of the random masks (the same as --seed; this one wins)")


def lambdas_arg(default: float | None, help: str) -> Arg:
    """`--x:merge_lambda`, once or once per model, read as the original plug-in reads it."""
    return Arg("merge_lambda", float, default, help, many=True)


class Average(MergeMethod):
    """theta = sum_i w_i theta_i / sum_i w_i  (Wortsman et al. 2022, model soups; equal w by default).
    With the original's --x:merge_lambda instead: sum_i l_i theta_i, not normalized (one l per model;
    a single l with two models is (l, 1 - l); a single l with more models: the plain average)."""

    name = "average"
    aliases = ("variadic-average",)
    description = "(weighted) average of the models"
    args = (WEIGHTS, lambdas_arg(None, "the original's per-model scales, summed without normalizing"))

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if args["weights"] and args["merge_lambda"]:
            raise ThetaError("give --x:weights or --x:merge_lambda, not both")

    def copies_equal_models(self, args, has_ancestor, has_aux):
        lambdas = args["merge_lambda"] or []
        # normalized weights, or one merge_lambda (l, 1 - l for two models, else the plain average)
        if len(lambdas) <= 1 or abs(sum(lambdas) - 1.0) < 1e-12:
            return "always"
        return "never"  # per-model scales summing to other than 1 move equal values too

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        if args["merge_lambda"]:
            return weighted_sum(inputs.models, merge_lambdas(args["merge_lambda"], len(inputs.models), True))
        w = weights_for(args, len(inputs.models))
        return weighted_sum(inputs.models, w).div_(sum(w))


class TaskArithmetic(GeneralizedTaskArithmetic):
    """theta = theta_0 + sum_i l_i (theta_i - theta_0)  (Ilharco et al. 2023), l_i = merge_lambda
    (default 0.1, the original plug-in's), one per model or one for all; with two models a single
    value l gives (l, 1 - l), as in the original."""

    name = "task-arithmetic"
    description = "ancestor + merge_lambda * sum of task vectors"
    args = (lambdas_arg(0.1, "scale of the task vectors (one, or one per model)"),)

    def weights(self, args: dict, n_models: int) -> list[float]:
        return merge_lambdas(args["merge_lambda"], n_models)

    def scale(self, args: dict) -> float:
        return 1.0  # merge_lambda scales each task vector (weights)


class DareTaskArithmetic(TaskArithmetic):
    """theta = theta_0 + sum_i l_i m_i * tau_i / (1 - p),  m_i ~ Bernoulli(1 - p)  (Yu et al. 2024, DARE);
    defaults as the original plug-in's: p = 0.5, l = 0.5 (two models: (l, 1 - l)).

    Masks are drawn from a CPU generator seeded by --seed (or --x:seed) and the parameter's name, so
    a merge is reproducible and identical on CPU and GPU.
    """

    name = "dare-task-arithmetic"
    description = "task arithmetic on randomly dropped, rescaled task vectors"
    args = (
        Arg("dropout_probability", float, 0.5, "share p of each task vector dropped"),
        lambdas_arg(0.5, "scale of the task vectors (one, or one per model)"),
        SEED,
    )

    def sparsifier(self, args: dict, inputs: Inputs) -> Random:
        return Random(args["dropout_probability"], inputs.generator())

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 <= args["dropout_probability"] < 1.0:
            raise ThetaError("--x:dropout_probability must be in [0, 1)")


class ModelStock(MergeMethod):
    """theta = t * mean_i(theta_i) + (1 - t) * theta_0,  t = N cos / (1 + (N - 1) cos),
    cos = mean over pairs of cos(tau_i, tau_j), per parameter  (Jang et al. 2024, Model Stock)."""

    name = "model-stock"
    description = "interpolate the average towards the ancestor by the task vectors' mutual angle"
    needs_ancestor = True

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        n = len(inputs.models)
        mean = inputs.models[0].clone()
        for m in inputs.models[1:]:
            mean.add_(m)
        mean.div_(n)
        taus = task_vectors(inputs)
        flat = [t.reshape(-1) for t in taus]
        norms = [float(torch.sum(f * f, dtype=torch.float64)) ** 0.5 for f in flat]
        cosines = [
            (
                float(torch.sum(flat[i] * flat[j], dtype=torch.float64)) / (norms[i] * norms[j])
                if norms[i] > 0 and norms[j] > 0
                else 1.0
            )
            for i in range(n)
            for j in range(i + 1, n)
        ]
        cos = sum(cosines) / len(cosines)
        t = n * cos / (1 + (n - 1) * cos) if (1 + (n - 1) * cos) != 0 else 0.0
        return mean.mul_(t).add_(inputs.ancestor, alpha=1.0 - t)
