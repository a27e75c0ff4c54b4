"""Generalized task arithmetic: theta = theta_0 + lambda * consensus_i(w_i * sparsify(theta_i - theta_0)).

Task arithmetic, DARE, TIES, Breadcrumbs and DELLA are this one merge with other parts: a
sparsifier (methods.sparsify: none, Magnitude, Random, Outliers, Ranked) and a consensus
(methods.consensus: Sum, SignElection). Task vectors are formed in place in the models' own
tensors, one model at a time, and sparsified at once (see git_theta.merges.task_arithmetic).
"""

import torch

from git_theta.merges.task_arithmetic import TaskArithmeticMerge, keep_all
from git_theta_merge_cli.methods.base import Inputs, MergeMethod
from git_theta_merge_cli.methods.consensus import Sum


class GeneralizedTaskArithmetic(MergeMethod, TaskArithmeticMerge):
    """A merge-CLI method made of a sparsifier and a consensus. Extend this (not MergeMethod) to
    add a task-vector method: declare its arguments and say which parts they choose; the loop,
    the in-place memory use and the streaming of models come with it."""

    needs_ancestor = True

    def sparsifier(self, args: dict, inputs: Inputs):
        """sparsify(tau, i) for this parameter (default: keep every entry)."""
        return keep_all

    def consensus(self, args: dict, inputs: Inputs):
        """consensus(out, kept, weights, scale) for this parameter (default: their sum)."""
        return Sum()

    def weights(self, args: dict, n_models: int) -> list[float] | None:
        """Per-model scales applied before the consensus (None: 1 each)."""
        return None

    def scale(self, args: dict) -> float:
        """lambda, the scale of the combined task vector."""
        return args["merge_lambda"]

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        return self.task_arithmetic(
            inputs.ancestor, inputs.models, self.sparsifier(args, inputs), inputs=inputs, args=args
        )

    def task_vector(self, model: torch.Tensor, ancestor: torch.Tensor) -> torch.Tensor:
        return model.sub_(ancestor)  # in place: the model's tensor becomes its task vector

    def combine(self, ancestor: torch.Tensor, kept: list, *, inputs: Inputs, args: dict) -> torch.Tensor:
        consensus = self.consensus(args, inputs)  # made now: a global sign loads after the models
        return consensus(ancestor, kept, self.weights(args, len(kept)), self.scale(args))
