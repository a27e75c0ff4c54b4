"""Built-in merge strategies: take a side, averages, weighted average, task arithmetic, context rules."""

import fnmatch

from git_theta import config
from git_theta.merges.base import (
    ALL_STATES,
    BOTH_ADDED,
    BOTH_MODIFIED,
    MergeStrategy,
    Sides,
    cast_like,
    compute,
)
from git_theta.merges.declaration import Arg
from git_theta.merges.task_arithmetic import TaskArithmeticMerge


class TakeOurs(MergeStrategy):
    name, aliases = "take_us", ("take-ours", "ours")
    description = "keep our version"

    def merge(self, sides: Sides, **args):
        return sides.ours


class TakeTheirs(MergeStrategy):
    name, aliases = "take_them", ("take-theirs", "theirs")
    description = "take their version"

    def merge(self, sides: Sides, **args):
        return sides.theirs


class TakeOriginal(MergeStrategy):
    name, aliases = "take_original", ("take-ancestor", "ancestor")
    description = "go back to the common ancestor's version"
    needs = ("ancestor",)

    def merge(self, sides: Sides, **args):
        return sides.ancestor


class _Average(MergeStrategy):
    _arith = True
    applies_to = frozenset({BOTH_MODIFIED, BOTH_ADDED})
    which: tuple[str, ...] = ()

    def merge(self, sides: Sides, **args):
        arrays = [getattr(sides, w) for w in self.which]
        mean = sum(compute(a) for a in arrays) / len(arrays)
        return cast_like(mean, sides.ours if sides.ours is not None else arrays[0])


class AverageOursTheirs(_Average):
    name, aliases = "average-ours-theirs", ("average",)
    description = "(ours + theirs) / 2"
    needs = which = ("ours", "theirs")


class AverageAll(_Average):
    name = "average-all"
    description = "(ancestor + ours + theirs) / 3"
    applies_to = frozenset({BOTH_MODIFIED})
    needs = which = ("ancestor", "ours", "theirs")


class AverageOursOriginal(_Average):
    name = "average-ours-original"
    description = "(ancestor + ours) / 2"
    applies_to = frozenset({BOTH_MODIFIED})
    needs = which = ("ancestor", "ours")


class AverageTheirsOriginal(_Average):
    name = "average-theirs-original"
    description = "(ancestor + theirs) / 2"
    applies_to = frozenset({BOTH_MODIFIED})
    needs = which = ("ancestor", "theirs")


class WeightedAverage(MergeStrategy):
    name = "weighted-average"
    description = "weight * ours + (1 - weight) * theirs"
    applies_to = frozenset({BOTH_MODIFIED, BOTH_ADDED})
    needs = ("ours", "theirs")
    args = (Arg("weight", float, 0.5, "weight of our side"),)
    _arith = True

    def merge(self, sides: Sides, weight: float = 0.5, **args):
        return cast_like(weight * compute(sides.ours) + (1 - weight) * compute(sides.theirs), sides.ours)


class TaskArithmetic(MergeStrategy, TaskArithmeticMerge):
    """The merge driver's task arithmetic: two task vectors (ours, theirs) summed in float64."""

    name = "task-arithmetic"
    description = "ancestor + lambda * ((ours - ancestor) + (theirs - ancestor))"
    applies_to = frozenset({BOTH_MODIFIED})
    needs = ("ancestor", "ours", "theirs")
    args = (Arg("merge_lambda", float, 1.0, "scale of the summed task vectors"),)
    _arith = True

    def merge(self, sides: Sides, merge_lambda: float = 1.0, **args):
        merged = self.task_arithmetic(
            compute(sides.ancestor), [sides.ours, sides.theirs], merge_lambda=merge_lambda
        )
        return cast_like(merged, sides.ours)

    def task_vector(self, model, ancestor):
        return compute(model) - ancestor

    def combine(self, ancestor, kept, merge_lambda: float = 1.0):
        moved = kept[0]
        for tau in kept[1:]:
            moved = moved + tau
        return ancestor + merge_lambda * moved


def context_rules(raw: str | None = None) -> list[tuple[str, str]]:
    """GIT_THETA_MERGE_CONTEXT: "pattern=ours;pattern=theirs;..." (first matching pattern wins)."""
    raw = (config.get("merge_context") or "") if raw is None else raw
    rules = []
    for part in raw.replace("\n", ";").split(";"):
        if "=" in part:
            pattern, _, side = part.rpartition("=")
            rules.append((pattern.strip(), side.strip()))
    return rules


class Context(MergeStrategy):
    name = "context"
    description = "ours or theirs by parameter-name pattern (GIT_THETA_MERGE_CONTEXT)"
    applies_to = ALL_STATES

    def side_for(self, name: str) -> str | None:
        for pattern, side in context_rules():
            if fnmatch.fnmatchcase(name, pattern):
                return side
        return None

    def merge(self, sides: Sides, **args):
        side = self.side_for(sides.name)
        if side in ("ours", "us", "take_us"):
            return sides.ours
        if side in ("theirs", "them", "take_them"):
            return sides.theirs
        if side in ("ancestor", "original", "take_original"):
            return sides.ancestor
        raise LookupError(sides.name)
