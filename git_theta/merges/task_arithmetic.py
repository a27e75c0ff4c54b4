"""Task arithmetic, the shape both merge hierarchies share: theta = theta_0 + lambda * combined task vectors.

tau_i = theta_i - theta_0 is formed one model at a time and sparsified at once (the merge CLI's
inputs may load lazily, so only one full task vector besides the kept ones is ever in memory);
`combine` then adds the kept vectors to the ancestor (a sum, or a sign-elected mean).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence


def keep_all(tau: object, index: int) -> object:
    """The sparsifier that keeps every entry."""
    return tau


class TaskArithmeticMerge(ABC):
    """The task-arithmetic template, mixed into a git merge-driver strategy (numpy, float64) or a
    merge-CLI method (torch, in place); a contributor extends that strategy or method, not this."""

    def task_arithmetic(
        self, ancestor: object, models: Sequence, sparsify: Callable = keep_all, **how
    ) -> object:
        """ancestor + combine(sparsify(tau_i)), one model's task vector at a time."""
        kept = []
        for i in range(len(models)):
            tau = self.task_vector(models[i], ancestor)  # a lazy sequence loads model i here
            kept.append(sparsify(tau, i))
            del tau  # the dense task vector goes before the next model is loaded
        return self.combine(ancestor, kept, **how)

    @abstractmethod
    def task_vector(self, model: object, ancestor: object) -> object:
        """theta_i - theta_0 in the array type and precision the merge computes in."""

    @abstractmethod
    def combine(self, ancestor: object, kept: list, **how) -> object:
        """theta_0 plus the kept task vectors, combined and scaled as `how` says."""
