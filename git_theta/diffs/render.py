"""Model diffs as text (colored on a terminal), a --stat table, JSON, or a per-file listing."""

import os
import sys

from git_theta.diffs.compute import ModelDiff, ParamChange
from git_theta.diffs.sides import WORKING_TREE, ModelSide

_COLORS = {"added": "32", "removed": "31", "modified": "33", "header": "1", "dim": "2"}


def use_color(stream=None) -> bool:
    """Color on a terminal (or git's pager), never when NO_COLOR is set or output is piped."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return stream.isatty() or bool(os.environ.get("GIT_PAGER_IN_USE"))


def _paint(text: str, what: str, color: bool) -> str:
    return f"\033[{_COLORS[what]}m{text}\033[0m" if color else text


def fmt_shape(dtype: str, shape) -> str:
    return f"{dtype}[{', '.join(str(s) for s in shape)}]"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "not stored yet"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _num(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def stored_text(diff: ModelDiff) -> str:
    """What the change stored: new bytes (to the old side's tree, or to this file), or why nothing is."""
    n = diff.stored_bytes
    if n is None:
        return (
            "not stored yet"
            if diff.unstored in (None, WORKING_TREE)
            else f"a {diff.unstored}, not stored by git-theta"
        )
    if diff.stored_scope == "change":
        return f"{fmt_bytes(n)} stored by this change" if n else "nothing new stored by this change"
    return f"{fmt_bytes(n)} new to this file" if n else "nothing new to this file"


def summary_line(diff: ModelDiff) -> str:
    c = diff.counts
    changed = c["added"] + c["removed"] + c["modified"]
    fmt = ""
    if diff.old_format and diff.new_format and diff.old_format != diff.new_format:
        fmt = f", format {diff.old_format} -> {diff.new_format}"
    path = f"{diff.old_path} -> {diff.path}" if diff.old_path and diff.old_path != diff.path else diff.path
    return (
        f"{path}: {changed} of {diff.total} parameters changed "
        f"({c['modified']} modified, {c['added']} added, {c['removed']} removed){fmt}, {stored_text(diff)}"
    )


def change_line(change: ParamChange, color: bool, unstored: str | None = WORKING_TREE) -> str:
    status = _paint(f"{change.status:<8}", change.status, color)
    if change.status == "added":
        return f"  {status} {change.name}  {change.new.shown}"
    if change.status == "removed":
        return f"  {status} {change.name}  {change.old.shown}"
    old, new = change.old, change.new
    shape = new.shown
    if old.shown != new.shown:
        shape = f"{old.shown} -> {shape}"
    parts = [f"  {status} {change.name}  {shape}", new.update_type or unstored or WORKING_TREE]
    if change.shape_changed:
        parts.append("(shape changed)")
    if change.encoded:
        parts.append("(quantized blocks: values not compared)")
    n = change.numbers
    if n is not None:
        parts += [
            f"changed {n.changed_fraction:.1%}",
            f"l2 {n.l2:.4g}",
            f"rel {_num(n.relative, '.3e')}",
            f"max {n.max_abs:.4g}",
            f"cos {_num(n.cosine, '.6f')}",
        ]
    return "  ".join(parts)


def text(diff: ModelDiff, color: bool = False, threshold: float | None = None) -> str:
    """The full diff of one file: header, summary first, then one line per changed parameter."""
    lines = [
        _paint(f"diff --git-theta a/{diff.old_path or diff.path} b/{diff.path}", "header", color),
        summary_line(diff),
    ]
    hidden = 0
    for change in diff.changes:
        if _below(change, threshold):
            hidden += 1
            continue
        lines.append(change_line(change, color, diff.unstored))
    if hidden:
        lines.append(
            _paint(
                f"  ({hidden} modified parameter(s) below relative change {threshold:g} hidden)", "dim", color
            )
        )
    return "\n".join(lines) + "\n"


def _below(change: ParamChange, threshold: float | None) -> bool:
    return (
        threshold is not None
        and change.status == "modified"
        and change.numbers is not None
        and change.numbers.relative is not None
        and change.numbers.relative < threshold
    )


def stat(diff: ModelDiff, color: bool = False, threshold: float | None = None) -> str:
    """One line per changed parameter, largest relative change first, then the summary."""
    rows = [c for c in diff.changes if not _below(c, threshold)]

    def key(c: ParamChange):  # measured changes by relative change, then the rest by name
        rel = c.numbers.relative if c.numbers else None
        return (0, -rel, c.name) if rel is not None else (1, 0.0, c.name)

    rows.sort(key=key)
    width = max((len(c.name) for c in rows), default=0)
    lines = []
    for c in rows:
        if c.numbers is not None:
            detail = f"rel {_num(c.numbers.relative, '.3e')}  changed {c.numbers.changed_fraction:6.1%}"
        elif c.shape_changed:
            detail = f"{c.old.shown} -> {c.new.shown}"
        else:
            detail = c.status
        lines.append(f" {c.name:<{width}} | {_paint(detail, c.status, color)}")
    lines.append(" " + summary_line(diff))
    return "\n".join(lines) + "\n"


def to_json(diff: ModelDiff, threshold: float | None = None) -> dict:
    return {
        "path": diff.path,
        "old_format": diff.old_format,
        "new_format": diff.new_format,
        "total": diff.total,
        "unchanged": diff.unchanged,
        "counts": diff.counts,
        "stored_bytes": diff.stored_bytes,
        "changes": [c.to_json() for c in diff.changes if not _below(c, threshold)],
    }


def listing(side: ModelSide) -> str:
    """One line per parameter of one version (git's textconv, so `git log -p` shows which moved)."""
    stored = sum({p.oid: p.size for p in side.params.values()}.values())
    lines = [f"git-theta {side.format} checkpoint: {len(side.params)} parameters, {fmt_bytes(stored)} stored"]
    for name, p in side.params.items():
        lines.append(f"{name}  {p.shown}  {p.update_type}  {fmt_bytes(p.size)}  sha256:{p.hash[:16]}")
    return "\n".join(lines) + "\n"
