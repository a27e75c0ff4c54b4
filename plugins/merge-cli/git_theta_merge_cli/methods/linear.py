"""Linear merges: (weighted) averages and task-vector sums."""

import torch

from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, task_vectors, weights_for

WEIGHTS = Arg("weights", float, None, "one weight per model (repeat the flag); default equal", many=True)
LAMBDA = Arg("merge_lambda", float, 1.0, "scale of the summed task vectors")


class Average(MergeMethod):
    """theta = sum_i w_i theta_i / sum_i w_i  (Wortsman et al. 2022, model soups; equal w by default)."""

    name = "average"
    description = "(weighted) average of the models"
    args = (WEIGHTS,)

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        w = weights_for(args, len(inputs.models))
        out = inputs.models[0].mul_(w[0])
        for wi, m in zip(w[1:], inputs.models[1:]):
            out.add_(m, alpha=wi)
        return out.div_(sum(w))


class TaskArithmetic(MergeMethod):
    """theta = theta_0 + lambda * sum_i (theta_i - theta_0)  (Ilharco et al. 2023)."""

    name = "task-arithmetic"
    description = "ancestor + merge_lambda * sum of task vectors"
    args = (LAMBDA,)
    needs_ancestor = True

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        taus = task_vectors(inputs)
        total = taus[0]
        for t in taus[1:]:
            total.add_(t)
        return inputs.ancestor.add_(total, alpha=args["merge_lambda"])


class DareTaskArithmetic(MergeMethod):
    """theta = theta_0 + lambda * sum_i m_i * tau_i / (1 - p),  m_i ~ Bernoulli(1 - p)  (Yu et al. 2024, DARE).

    Masks are drawn from a CPU generator seeded by --seed and the parameter's name, so a merge
    is reproducible and identical on CPU and GPU.
    """

    name = "dare-task-arithmetic"
    description = "task arithmetic on randomly dropped, rescaled task vectors"
    args = (Arg("dropout_probability", float, 0.9, "share p of each task vector dropped"), LAMBDA)
    needs_ancestor = True

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        p = args["dropout_probability"]
        g = inputs.generator()
        total = None
        for tau in task_vectors(inputs):
            keep = (torch.rand(tau.shape, generator=g) >= p).to(tau.device)
            tau.mul_(keep).div_(1.0 - p)
            total = tau if total is None else total.add_(tau)
        return inputs.ancestor.add_(total, alpha=args["merge_lambda"])

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 <= args["dropout_probability"] < 1.0:
            from git_theta.errors import ThetaError

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
