"""`git-theta-merge %O %A %B %P`: git's merge driver for tracked checkpoints.

One-sided changes merge automatically and bit-exact. Parameters changed on both sides are
resolved by per-pattern rules (git config `theta.merge.rule "PATTERN=STRATEGY[:ARGS]"`), then the
default strategy (GIT_THETA_MERGE_STRATEGY / theta.merge.strategy), then GIT_THETA_MERGE_CONTEXT
patterns; what remains is asked on the terminal if there is one, else listed and the merge stops.
GIT_THETA_MANUAL_MERGE=1 writes the three versions beside the file for the user to merge.
"""

import os
import sys

import click

from git_theta import config
from git_theta.errors import ThetaError, guarded
from git_theta.logs import get_logger
from git_theta.merges import apply as merge_apply
from git_theta.merges import interactive
from git_theta.merges.plan import configured_rules, default_choice, plan, rule_for
from git_theta.metadata import Metadata, is_metadata

log = get_logger(__name__)


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


def _write_versions(path: str, versions: dict[str, Metadata | None]) -> list[str]:
    """Write each version's checkpoint as PATH.<side> for a manual merge."""
    from git_theta.filter.smudge import prepare

    written = []
    for side, meta in versions.items():
        if meta is None:
            continue
        target = f"{path}.{side}"
        write = prepare(meta.dumps(), path)
        with open(target + ".tmp", "wb") as out:
            write(out)
        os.replace(target + ".tmp", target)
        written.append(target)
    return written


def merge_files(ancestor: str, ours: str, theirs: str, path: str) -> int:
    """Merge; writes the result over OURS and returns 0, or returns 1 leaving a conflict."""
    from git_theta.prefetch import ensure_objects
    from git_theta.storage.lfs_store import LfsStore

    base, a, b = _load(ancestor, path), _load(ours, path), _load(theirs, path)
    if a is None or b is None:
        raise ThetaError(
            "one side deleted the model and the other changed it; keep one with `git checkout --ours/--theirs`",
            path,
        )
    if config.get_bool("manual_merge"):
        files = _write_versions(path, {"ours": a, "theirs": b, "ancestor": base})
        click.echo(
            f"git-theta: {path}: wrote {', '.join(files)}; save the merged model as {path}, then `git add {path}`",
            err=True,
        )
        return 1
    p = plan(base, a, b)
    if p.structure_conflict:
        pieces = ", ".join(p.structure_pieces[:5])
        raise ThetaError(
            f"the checkpoint's structure changed differently on both sides ({pieces}: which tensors "
            f"exist or their shapes); keep one side with `git checkout --ours/--theirs -- {path}` or save "
            f"the merged model yourself and `git add {path}`",
            path,
        )
    store = LfsStore.for_cwd()
    choices, unresolved = {}, []
    rules, default = configured_rules(), default_choice()
    for conflict in p.conflicts:
        choice = rule_for(conflict, rules, default)
        if choice is None:
            unresolved.append(conflict)
        else:
            choices[conflict.name] = choice
    if p.conflicts:
        ensure_objects(merge_apply.objects_needed(p.conflicts), store, None, path)
    if unresolved:
        terminal = interactive.open_terminal() if config.get_bool("merge_interactive") else None
        if terminal is None:
            click.echo(f"git-theta: {path}: {len(unresolved)} parameter(s) changed on both sides:", err=True)
            for c in unresolved[:50]:
                only_sides = f"; {c.encoded} is quantized: only take_us/take_them/take_original apply"
                click.echo(f"  {c.name} ({c.state}{only_sides if c.encoded else ''})", err=True)
            click.echo(
                "git-theta: resolve with GIT_THETA_MERGE_STRATEGY=<strategy> or "
                '`git config --add theta.merge.rule "PATTERN=STRATEGY"` and merge again, '
                "or keep one side with `git checkout --ours/--theirs -- PATH`",
                err=True,
            )
            return 1
        choices.update(interactive.ask(unresolved, store, path, terminal))
    merged = dict(p.merged)
    for conflict in p.conflicts:
        entry = merge_apply.resolve(conflict, choices[conflict.name], store)
        if entry is not None:
            merged[conflict.name] = entry
        log.info("%s: %s resolved with %s", path, conflict.name, choices[conflict.name].strategy.name)
    ordered = {name: merged[name] for name in p.order if name in merged}
    result = Metadata(p.format, p.layout, ordered)
    with open(ours, "wb") as f:
        f.write(result.dumps())
    return 0


@click.command("git-theta-merge")
@click.argument("ancestor")
@click.argument("ours")
@click.argument("theirs")
@click.argument("path", default="")
def merge_command(ancestor: str, ours: str, theirs: str, path: str) -> None:
    """Merge driver: writes the result over OURS; exits 1 on unresolved conflicts (listed on stderr)."""
    from git_theta.storage import objects_lock

    with objects_lock.writing():  # git records the result after we exit: prune's grace covers that
        code = merge_files(ancestor, ours, theirs, path)
    sys.exit(code)


def main() -> None:
    """`git-theta-merge`, in the error boundary: a failure (a full disk too) is one line, exit 1."""
    sys.exit(guarded(merge_command))
