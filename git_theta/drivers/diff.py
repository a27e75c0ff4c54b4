"""`git-theta-diff`: git's diff driver for tracked checkpoints.

As `diff.theta.command` git calls it with PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE
(`git diff`, or `git log -p --ext-diff`), plus NEW-PATH and a message after a rename; as `diff.theta.textconv` (`--textconv FILE`) it lists
one version's parameters, which is what `git log -p` and `git show` diff line by line.
"""

import sys

import click

from git_theta.diffs import render
from git_theta.diffs.baseline import Baseline
from git_theta.diffs.compute import ModelDiff, compare
from git_theta.diffs.sides import PLAIN_BLOB, WORKING_TREE, ModelSide, side_from_bytes
from git_theta.drivers import diff_context
from git_theta.errors import guarded
from git_theta.git import repo


def _read(path: str) -> bytes | None:
    if path in ("/dev/null", ""):
        return None
    with open(path, "rb") as f:
        return f.read()


def _side(path: str, file: str, hexsha: str, top: str) -> ModelSide:
    """A side git names by a blob it has is stored (staged or committed), even when git hands over
    the working-tree file because it is unchanged; zeros (or no such blob) is the working tree."""
    if file != "/dev/null" and hexsha not in (".", diff_context.ZERO):
        blob = repo.read_blob(hexsha, cwd=top)
        if blob is not None:
            return side_from_bytes(path, blob, None, top, PLAIN_BLOB)
    return side_from_bytes(path, _read(file), None, top, WORKING_TREE)


def _diff(args: tuple[str, ...]) -> ModelDiff:
    old_path, old_file, old_hex, _, new_file, new_hex = args[:6]
    new_path = args[7] if len(args) >= 9 else old_path
    top = repo.root()
    old, new = _side(old_path, old_file, old_hex, top), _side(new_path, new_file, new_hex, top)
    sides = None if new.unstored else diff_context.versions(old_path, old_hex, new_path, new_hex, top)
    known = Baseline(*sides, top).known(new_path) if sides else None
    result = compare(old, new, known=known)
    result.old_path = old_path
    return result


@click.command("git-theta-diff", context_settings={"ignore_unknown_options": True})
@click.option("--textconv", "textconv", is_flag=True, help="List one version's parameters (git textconv).")
@click.argument("args", nargs=-1)
def diff_command(textconv: bool, args: tuple[str, ...]) -> None:
    """Called by git; see `git theta diff` for the same diff with options."""
    if textconv:
        if len(args) != 1:
            raise click.UsageError("git-theta-diff --textconv FILE")
        side = side_from_bytes(args[0], _read(args[0]), None)
        sys.stdout.write(render.listing(side) if side.params else "")
        return
    if len(args) < 7:
        raise click.UsageError("git-theta-diff PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE")
    sys.stdout.write(render.text(_diff(args), color=render.use_color()))


def main() -> None:
    """`git-theta-diff`, in the error boundary: a failure is one line on stderr, exit 1."""
    sys.exit(guarded(diff_command))
