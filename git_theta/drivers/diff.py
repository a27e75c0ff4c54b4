"""`git-theta-diff`: git's diff driver for tracked checkpoints.

As `diff.theta.command` git calls it with PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE
(`git diff`, or `git log -p --ext-diff`); as `diff.theta.textconv` (`--textconv FILE`) it lists
one version's parameters, which is what `git log -p` and `git show` diff line by line.
"""

import sys

import click

from git_theta.diffs import render
from git_theta.diffs.compute import compare
from git_theta.diffs.sides import side_from_bytes
from git_theta.errors import ThetaError
from git_theta.logs import get_logger


def _read(path: str) -> bytes | None:
    if path in ("/dev/null", ""):
        return None
    with open(path, "rb") as f:
        return f.read()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--textconv", "textconv", is_flag=True, help="List one version's parameters (git textconv).")
@click.argument("args", nargs=-1)
def main(textconv: bool, args: tuple[str, ...]) -> None:
    """Called by git; see `git theta diff` for the same diff with options."""
    get_logger()
    try:
        if textconv:
            if len(args) != 1:
                raise click.UsageError("git-theta-diff --textconv FILE")
            side = side_from_bytes(args[0], _read(args[0]), None)
            sys.stdout.write(render.listing(side) if side.params else "")
            return
        if len(args) < 7:
            raise click.UsageError("git-theta-diff PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE")
        path, old_file, new_file = args[0], args[1], args[4]
        old = side_from_bytes(path, _read(old_file), None)
        new = side_from_bytes(path, _read(new_file), None)
        sys.stdout.write(render.text(compare(old, new), color=render.use_color()))
    except ThetaError as exc:
        raise click.ClickException(str(exc)) from None
