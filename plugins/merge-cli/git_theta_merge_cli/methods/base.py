"""The merge-method plug-in interface: typed arguments, declared inputs, a per-parameter merge."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch

from git_theta.errors import ThetaError
from git_theta.merges import declaration


class Arg(declaration.Arg):
    """One `--x:name=value` argument of a method (repeat the flag for a list)."""

    def parse(self, values: list[str]):
        """The typed value (a list when `many`) of the strings given on the command line."""
        try:
            items = [self.convert(v) for v in values]
        except ValueError:
            raise ThetaError(f"--x:{self.name}: {values!r} is not {self.type.__name__}") from None
        if self.many:
            return items
        if len(items) != 1:
            raise ThetaError(f"--x:{self.name} takes one value, got {len(items)}")
        return items[0]


@dataclass
class Inputs:
    """What one parameter's merge sees: the models' values (float, on the device), maybe more."""

    name: str
    models: list[torch.Tensor]
    ancestor: torch.Tensor | None = None
    aux: list[torch.Tensor] | None = None
    generator_seed: int = 0
    extra: dict = field(default_factory=dict)  # e.g. the global majority sign

    def generator(self) -> torch.Generator:
        """A CPU generator seeded per parameter: the same masks on any device, in any order."""
        return torch.Generator().manual_seed(self.generator_seed)


class MergeMethod(declaration.Declared, ABC):
    """A merge-CLI method (entry point group git_theta_merge_cli.methods): merges whole models
    parameter by parameter, streamed from git. Extend this to add a method run by
    `git-theta-merge-cli --merge NAME`, with aux data, seeds and GPUs; a strategy that resolves
    conflicts inside `git merge` extends git_theta.merges.base.MergeStrategy instead. Task-vector
    methods extend methods.generalized.GeneralizedTaskArithmetic."""

    needs_ancestor: bool = False
    aux_kind: str | None = None  # "fisher" (shaped like the parameter, or for mats a [rows, rows]
    # matrix), "gram" (input Gram matrices) or "task-vector" (TIES' pre-trimmed task vectors)
    aux_required: bool = True  # False: parameters without aux data fall back to an average
    min_models: int = 2
    max_models: int | None = None

    def check(self, n_models: int, has_ancestor: bool, n_aux: int, args: dict) -> None:
        """Refuse impossible inputs before any work starts."""
        if n_models < self.min_models or (self.max_models and n_models > self.max_models):
            want = (
                f"{self.min_models}" if self.max_models == self.min_models else f"at least {self.min_models}"
            )
            raise ThetaError(f"{self.name} merges {want} models, got {n_models}")
        if self.needs_ancestor and not has_ancestor:
            raise ThetaError(f"{self.name} needs the models' common ancestor: pass --ancestor REV:PATH")
        if self.aux_kind and self.aux_required and n_aux != n_models:
            raise ThetaError(
                f"{self.name} needs --aux_data with one {self.aux_kind} file per model ({n_models}), got {n_aux}"
            )
        if not self.aux_kind and n_aux:
            raise ThetaError(f"{self.name} takes no --aux_data")
        if args.get("weights"):
            weights_for(args, n_models)
        if args.get("merge_lambda") is not None:
            merge_lambdas(args["merge_lambda"], n_models)

    def copies_equal_models(self, args: dict, has_ancestor: bool, has_aux: bool) -> str:
        """When a parameter is equal in every model, is the merge that value, so that it can be
        copied without computing? "always"; "with-ancestor": only when the ancestor's equals it too
        (task vectors all zero); "never". The original plug-in computes every parameter of models
        committed apart (their metadata differ), so a method whose formula would move equal
        values (unnormalized scales, task vectors from aux data) must say so."""
        return "with-ancestor"

    def parse_args(self, raw: dict[str, list[str]]) -> dict:
        """Typed values of `--x:` arguments; unknown names are an error."""
        unknown = self.unknown_args(raw)
        if unknown:
            listing = ", ".join(a.name for a in self.args) or "none"
            raise ThetaError(f"{self.name} has no argument {', '.join(unknown)} (its arguments: {listing})")
        return {a.name: a.parse(raw[a.name]) if a.name in raw else a.default for a in self.args}

    @abstractmethod
    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        """The merged value of one parameter (same shape, float dtype of the inputs)."""

    def groups(self, names: list[str]) -> list[list[str]]:
        """Parameters merged together (each alone unless a method pairs them, as lora- does)."""
        return [[n] for n in names]

    def merge_group(self, group: dict[str, Inputs], args: dict) -> dict[str, torch.Tensor]:
        """Merge one group; the default merges each parameter on its own."""
        return {name: self.merge(inputs, args) for name, inputs in group.items()}


def task_vectors(inputs: Inputs) -> list[torch.Tensor]:
    """tau_i = theta_i - theta_0 (in place: the models' tensors become their task vectors)."""
    return [m.sub_(inputs.ancestor) for m in inputs.models]


def merge_lambdas(value, n: int, uniform: bool = False) -> list[float]:
    """Per-model scales from `--x:merge_lambda`, as the original plug-in reads them: one value per
    model as given; a single value l with two models gives (l, 1 - l); otherwise the single value
    for every model, or 1/n each when `uniform` (averaging); no value: 1 each (1/n if uniform)."""
    values = [] if value is None else [float(v) for v in (value if isinstance(value, list) else [value])]
    if len(values) > 1:
        if len(values) != n:
            raise ThetaError(f"--x:merge_lambda given {len(values)} times for {n} models")
        return values
    if len(values) == 1 and n == 2:
        return [values[0], 1.0 - values[0]]
    if uniform:
        return [1.0 / n] * n
    return [values[0] if values else 1.0] * n


def weights_for(args: dict, n: int) -> list[float]:
    w = args.get("weights") or [1.0] * n
    if len(w) != n:
        raise ThetaError(f"--x:weights given {len(w)} times for {n} models")
    return [float(x) for x in w]
