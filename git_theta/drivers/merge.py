"""`git-theta-merge %O %A %B %P`: three-way merge of model metadata, parameter by parameter.

A parameter changed (or added, or deleted) on one side only is taken from that side, bit-exact;
one changed differently on both sides is a conflict that is listed, and the merge stops.
"""

import sys

import click

from git_theta.errors import ThetaError
from git_theta.metadata import Metadata, ParamEntry, is_metadata


def _load(path: str, display: str) -> Metadata | None:
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return None
    if not is_metadata(data):
        raise ThetaError(
            "merge input is not git-theta metadata (was the file committed before tracking?)", display
        )
    return Metadata.loads(data, display)


def _same(a: ParamEntry | None, b: ParamEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_tensor(b)


def merge3(base: Metadata | None, ours: Metadata, theirs: Metadata) -> tuple[Metadata, list[str]]:
    """The merged metadata and the names of conflicting parameters (empty when clean)."""
    base_params = base.params if base else {}
    names = list(ours.params) + [n for n in theirs.params if n not in ours.params]
    merged: dict[str, ParamEntry] = {}
    conflicts = []
    for name in names:
        o, a, b = base_params.get(name), ours.params.get(name), theirs.params.get(name)
        if _same(a, b):
            pick = a
        elif _same(a, o):
            pick = b
        elif _same(b, o):
            pick = a
        else:
            conflicts.append(name)
            pick = a
        if pick is not None:
            merged[name] = pick
    base_layout = base.layout if base else None
    if theirs.layout == ours.layout or theirs.layout == base_layout:
        fmt, layout = ours.format, ours.layout
    elif ours.layout == base_layout:
        fmt, layout = theirs.format, theirs.layout
    else:
        fmt, layout = ours.format, ours.layout
        conflicts.append("(checkpoint structure changed on both sides)")
    return Metadata(fmt, layout, merged), conflicts


@click.command()
@click.argument("ancestor")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", default="")
def main(ancestor: str, ours: str, theirs: str, path: str) -> None:
    """Merge driver: writes the result over OURS; exits 1 on conflicts (listed on stderr)."""
    try:
        base = _load(ancestor, path)
        a, b = _load(ours, path), _load(theirs, path)
        if a is None or b is None:
            raise ThetaError("one side deleted the model and the other changed it; resolve by hand", path)
        result, conflicts = merge3(base, a, b)
    except ThetaError as exc:
        click.echo(f"git-theta: {exc}", err=True)
        sys.exit(1)
    if conflicts:
        click.echo(f"git-theta: {path}: {len(conflicts)} parameter(s) changed on both sides:", err=True)
        for name in conflicts[:50]:
            click.echo(f"  {name}", err=True)
        click.echo(
            "git-theta: keep one side with `git checkout --ours/--theirs -- PATH` and `git add PATH`",
            err=True,
        )
        sys.exit(1)
    with open(ours, "wb") as f:
        f.write(result.dumps())
