"""The merge-strategy plug-in interface (entry point group git_theta.plugins.merges)."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from git_theta.errors import ThetaError
from git_theta.merges.declaration import Arg as Arg  # where strategy plug-ins import it from
from git_theta.merges.declaration import Declared

# Conflict states a strategy may apply to.
BOTH_MODIFIED = "both-modified"  # changed differently on both sides
BOTH_ADDED = "both-added"  # added on both sides with different values (no ancestor)
DELETED_OURS = "deleted-ours"  # we deleted it, they changed it
DELETED_THEIRS = "deleted-theirs"  # they deleted it, we changed it
ALL_STATES = frozenset({BOTH_MODIFIED, BOTH_ADDED, DELETED_OURS, DELETED_THEIRS})


@dataclass
class Sides:
    """The three versions of one parameter as numpy arrays (None where absent)."""

    name: str
    ancestor: np.ndarray | None
    ours: np.ndarray | None
    theirs: np.ndarray | None


class MergeStrategy(Declared, ABC):
    """Resolves one conflicting parameter in `git merge` (the merge driver); computes in float64
    (complex128) and casts back. Extend this to add a strategy users pick per parameter while git
    merges (entry point group git_theta.plugins.merges): it sees the three sides of one parameter
    in memory; to merge whole models from the command line, extend the merge CLI's MergeMethod."""

    applies_to: frozenset = ALL_STATES
    needs: tuple[str, ...] = ()  # sides that must be present: "ancestor", "ours", "theirs"

    def applicable(
        self, state: str, sides_present: set[str], same_shape: bool = True, encoded: bool = False
    ) -> bool:
        """Whether this strategy can resolve a conflict; `encoded`: the tensor is quantized blocks
        (GGUF Q4_K, ...), whose bytes arithmetic would garble, so only taking a side applies."""
        return (
            state in self.applies_to
            and set(self.needs) <= sides_present
            and ((same_shape and not encoded) or not self._arith)
        )

    _arith = False  # arithmetic strategies need equal shapes and plain (not quantized) values

    def parse_args(self, raw: dict[str, str]) -> dict:
        """Typed arguments from strings; unknown names or bad values are errors before any work."""
        unknown = self.unknown_args(raw)
        if unknown:
            raise ThetaError(f"merge strategy {self.name!r} has no argument(s) {', '.join(unknown)}")
        out = {}
        for arg in self.args:
            value = raw.get(arg.name, arg.default)
            try:
                out[arg.name] = arg.convert(value)
            except (TypeError, ValueError):
                raise ThetaError(
                    f"merge strategy {self.name!r}: {arg.name}={value!r} is not a {arg.type.__name__}"
                ) from None
        return out

    @abstractmethod
    def merge(self, sides: Sides, **args) -> np.ndarray | None:
        """The merged value (None deletes the parameter)."""


def compute(a: np.ndarray) -> np.ndarray:
    """Promote to float64 / complex128 for arithmetic."""
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def cast_like(value: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back to the parameter's dtype (ints rounded)."""
    if like.dtype.kind in "iub":
        value = np.rint(value.real if value.dtype.kind == "c" else value)
    return value.astype(like.dtype)
