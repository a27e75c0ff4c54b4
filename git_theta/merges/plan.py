"""The three-way merge of two model versions, parameter by parameter, and its conflicts.

What only one side changed (or added, or deleted) is taken from that side, bit-exact; what both
changed differently is a Conflict for a strategy to resolve.
"""

import fnmatch
from dataclasses import dataclass, field

from git_theta import config, plugins
from git_theta.errors import ThetaError
from git_theta.formats.detect import encoded_tensors
from git_theta.merges.base import BOTH_ADDED, BOTH_MODIFIED, DELETED_OURS, DELETED_THEIRS, MergeStrategy
from git_theta.merges.layout import merge_layouts
from git_theta.metadata import Metadata, ParamEntry


@dataclass
class Conflict:
    name: str
    state: str
    ancestor: ParamEntry | None
    ours: ParamEntry | None
    theirs: ParamEntry | None
    encoded: str | None = None  # quantized blocks ("Q4_K[64, 256]"): only a side can be taken

    def present(self) -> set[str]:
        return {s for s in ("ancestor", "ours", "theirs") if getattr(self, s) is not None}

    def same_shape(self) -> bool:
        shapes = {tuple(e.shape) for e in (self.ancestor, self.ours, self.theirs) if e is not None}
        return len(shapes) <= 1


@dataclass
class Plan:
    format: str
    layout: dict
    order: list[str]
    merged: dict[str, ParamEntry] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    structure_conflict: bool = False
    structure_pieces: list[str] = field(default_factory=list)  # layout paths both sides changed


def _same(a: ParamEntry | None, b: ParamEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_tensor(b)


def _plan_structure(base: Metadata | None, ours: Metadata, theirs: Metadata, order: list[str]) -> "Plan":
    """The merged format and layout: a one-sided change of format wins whole; within one format
    the layouts merge piece by piece (merges.layout)."""
    base_format = base.format if base else None
    if ours.format != theirs.format:
        if theirs.format == base_format:
            return Plan(ours.format, ours.layout, order)
        if ours.format == base_format:
            return Plan(theirs.format, theirs.layout, order)
        return Plan(ours.format, ours.layout, order, structure_conflict=True, structure_pieces=["format"])
    names = set(order) | set(base.params if base else ())
    same_format_base = base.layout if base and base.format == ours.format else None
    merged = merge_layouts(same_format_base, ours.layout, theirs.layout, names)
    return Plan(
        ours.format,
        merged.layout,
        order,
        structure_conflict=bool(merged.conflicts),
        structure_pieces=merged.conflicts,
    )


def plan(base: Metadata | None, ours: Metadata, theirs: Metadata) -> Plan:
    base_params = base.params if base else {}
    order = list(ours.params) + [n for n in theirs.params if n not in ours.params]
    result = _plan_structure(base, ours, theirs, order)
    encoded = {}
    for meta in (base, theirs, ours):  # ours last: its description wins
        if meta is not None:
            encoded.update(encoded_tensors(meta.format, meta.layout))
    for name in order:
        o, a, b = base_params.get(name), ours.params.get(name), theirs.params.get(name)
        if _same(a, b):
            pick = a
        elif _same(a, o):
            pick = b
        elif _same(b, o):
            pick = a
        else:
            state = (
                BOTH_ADDED
                if o is None
                else DELETED_OURS if a is None else DELETED_THEIRS if b is None else BOTH_MODIFIED
            )
            result.conflicts.append(Conflict(name, state, o, a, b, encoded.get(name)))
            continue
        if pick is not None:
            result.merged[name] = pick
    return result


@dataclass
class Choice:
    strategy: MergeStrategy
    args: dict


def parse_choice(text: str, where: str) -> Choice:
    """`strategy[:name=value,...]` -> Choice, validated before any work."""
    name, _, raw = text.strip().partition(":")
    strategy = plugins.merges.get(name.strip())()
    pairs = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ThetaError(f"{where}: argument {item!r} must look like name=value")
        pairs[key.strip()] = value.strip()
    return Choice(strategy, strategy.parse_args(pairs))


def configured_rules() -> list[tuple[str, Choice]]:
    """Per-pattern rules from git config `theta.merge.rule` values "PATTERN=STRATEGY[:ARGS]", in order."""
    rules = []
    for line in config.get_list("merge_rule"):
        pattern, eq, choice = line.partition("=")
        if not eq:
            raise ThetaError(f"theta.merge.rule {line!r} must look like PATTERN=STRATEGY[:ARGS]")
        rules.append((pattern.strip().strip('"'), parse_choice(choice, f"theta.merge.rule {line!r}")))
    return rules


def default_choice() -> Choice | None:
    """GIT_THETA_MERGE_STRATEGY, else git config theta.merge.strategy."""
    text = (config.get("merge_strategy") or "").strip()
    return parse_choice(text, "GIT_THETA_MERGE_STRATEGY") if text else None


def rule_for(conflict: Conflict, rules: list[tuple[str, Choice]], default: Choice | None) -> Choice | None:
    """The first rule whose pattern matches and whose strategy applies; then the default; then context."""
    from git_theta.merges.strategies import Context

    candidates = [c for p, c in rules if fnmatch.fnmatchcase(conflict.name, p)]
    if default is not None:
        candidates.append(default)
    context = Context()
    if context.side_for(conflict.name):
        candidates.append(Choice(context, {}))
    for choice in candidates:
        if isinstance(choice.strategy, Context) and not choice.strategy.side_for(conflict.name):
            continue
        if choice.strategy.applicable(
            conflict.state, conflict.present(), conflict.same_shape(), encoded=bool(conflict.encoded)
        ):
            return choice
    return None
