"""`git-theta-diff`: git's external diff driver, a per-parameter summary of what changed."""

import sys

import click

from git_theta.drivers.summary import summarize
from git_theta.errors import ThetaError


def _fmt(info: tuple) -> str:
    dtype, shape, _ = info
    return f"{dtype}[{', '.join(str(s) for s in shape)}]"


def render(path: str, old: dict, new: dict) -> str:
    """The text git shows for one tracked checkpoint."""
    lines = [f"diff --git-theta a/{path} b/{path}"]
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and new[n] != old[n]]
    same = len(new) - len(added) - len(changed)
    for n in removed:
        lines.append(f"- {n}  {_fmt(old[n])}")
    for n in added:
        lines.append(f"+ {n}  {_fmt(new[n])}")
    for n in changed:
        a, b = old[n], new[n]
        how = "values changed" if a[:2] == b[:2] else f"{_fmt(a)} -> {_fmt(b)}"
        lines.append(f"~ {n}  {_fmt(b)}  {how}")
    lines.append(f"  {len(added)} added, {len(removed)} removed, {len(changed)} changed, {same} unchanged")
    return "\n".join(lines) + "\n"


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def main(args: tuple[str, ...]) -> None:
    """Called by git as: PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE."""
    if len(args) < 7:
        raise click.UsageError(
            "git-theta-diff is git's diff driver: PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE"
        )
    path, old_file, new_file = args[0], args[1], args[4]
    try:
        sys.stdout.write(render(path, summarize(old_file, path), summarize(new_file, path)))
    except ThetaError as exc:
        raise click.ClickException(str(exc)) from None
