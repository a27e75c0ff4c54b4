"""`git theta ...`: the click command group; each command parses and dispatches to commands/
(failures are said by git_theta.errors.guarded, which git_theta.entry runs the group in)."""

import sys

import click


def _note_if_not_set_up(paths: list[str] | None = None) -> None:
    """One line on stderr when tracked files are metadata because the filter is not set up here."""
    from git_theta.setup_check import warning

    note = warning(paths)
    if note:
        click.echo(f"git-theta: {note}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="git-theta", prog_name="git-theta")
def main() -> None:
    """Version machine-learning checkpoints in git, parameter by parameter.

    Run `git theta install` once per machine and `git theta track FILE` once per checkpoint; from then
    on plain `git add`, `commit`, `checkout`, `diff`, `clone`, `push` and `pull` work on the model. A
    clean/smudge filter keeps a small metadata file in git and stores each parameter tensor as a Git
    LFS object: a commit stores only the tensors that changed, each as the smallest exact encoding of
    its change.
    """


@main.command()
@click.option(
    "--scope",
    type=click.Choice(["global", "user", "system", "repository", "local"]),
    default="global",
    show_default=True,
    help="Which git config file to write.",
)
def install(scope: str) -> None:
    """Register git-theta's filter, diff and merge drivers with git."""
    from git_theta.git.install import install as run

    run(scope)
    click.echo(f"git-theta installed ({scope} scope)")


@main.command()
@click.argument("patterns", nargs=-1, required=True)
def track(patterns: tuple[str, ...]) -> None:
    """Track checkpoint files (paths or globs) with git-theta."""
    from git_theta.commands.track import stage_committed_raw
    from git_theta.commands.track import track as run

    for p in patterns:
        click.echo(f"Tracking {run(p)!r} with git-theta")
        for path in stage_committed_raw(p):
            click.echo(
                f"{path} was committed raw: staged it through git-theta (git add --renormalize); commit to store it as metadata"
            )


@main.command()
@click.argument("patterns", nargs=-1, required=True)
def untrack(patterns: tuple[str, ...]) -> None:
    """Stop tracking patterns added with `git theta track`."""
    from git_theta.commands.track import untrack as run

    for p in patterns:
        click.echo(f"{'Untracked' if run(p) else 'Was not tracking'} {p!r}")


@main.command()
def formats() -> None:
    """List the installed checkpoint formats (built-in and plug-ins)."""
    from git_theta import plugins

    for cls in plugins.checkpoints.classes():
        names = ", ".join((cls.name, *cls.aliases))
        click.echo(f"{cls.name:<14} names: {names:<40} files: {' '.join(cls.extensions) or '-'}")


@main.command("ls-files")
def ls_files() -> None:
    """List the checkpoints in the index that git-theta tracks."""
    from git_theta.git.tracking import tracked_files as run

    paths = run()
    for path in paths:
        click.echo(path)
    _note_if_not_set_up(paths)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--update-type",
    default=None,
    help="How to store the change: auto (default: smallest exact encoding), dense, sparse, bitdelta, "
    "low-rank, ia3, or a plug-in's. Without --update-data, low-rank and ia3 APPROXIMATE the change "
    "(truncated SVD at rank GIT_THETA_LOW_RANK_K / least-squares scales) and rewrite FILE to the stored value.",
)
@click.option(
    "--update-data",
    default=None,
    type=click.Path(),
    help="Checkpoint of <parameter>/<part> tensors: sparse data/indices/indptr/shape, low-rank R/C, "
    "ia3 ia3. Named parameters become HEAD's value combined with them; FILE is rewritten to match.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
def add(update_type: str | None, update_data: str | None, args: tuple[str, ...]) -> None:
    """`git add` checkpoints with a chosen update type (other git add flags pass through)."""
    from git_theta.commands.add import add as run

    flags = [a for a in args if a.startswith("-")]
    paths = [a for a in args if not a.startswith("-")]
    sys.exit(run(paths, update_type, update_data, flags))


@main.command()
@click.argument("args", nargs=-1)
@click.option("--include", "paths", multiple=True, help="Only these tracked paths (repeatable).")
def fetch(args: tuple[str, ...], paths: tuple[str, ...]) -> None:
    """Download the tensors of [REMOTE] [REV...] (default HEAD) for offline work."""
    from git_theta.commands.fetch import fetch as run
    from git_theta.diffs.render import fmt_bytes

    count, size = run(list(args), list(paths) or None)
    click.echo(f"fetched {count} object(s), {fmt_bytes(size)}")
    _note_if_not_set_up()


@main.command("checkout-models")
@click.argument("paths", nargs=-1)
@click.option(
    "--pending", is_flag=True, help="The models a low-memory checkout left as metadata (the hooks use this)."
)
def checkout_models(paths: tuple[str, ...], pending: bool) -> None:
    """Write models left as metadata (GIT_THETA_SKIP_SMUDGE=1, low-memory checkouts), tensor by tensor."""
    from git_theta.filter.checkout import checkout_models as run

    if pending and paths:
        raise click.UsageError("--pending takes no paths")
    for path in run(list(paths) or None, pending=pending):
        if not pending:  # the hooks run after every checkout: they stay quiet, as git's own
            click.echo(f"checked out {path}")


@main.command()
@click.option("--force", "-f", is_flag=True, help="Delete (default: only report what would go).")
@click.option("--verbose", "-v", is_flag=True, help="List the objects.")
@click.option(
    "--expire",
    metavar="DATE",
    help="Delete only unreferenced objects written before DATE (git's syntax: 2.weeks.ago, 1.day.ago, "
    "now, never; default theta.pruneExpire, else gc.pruneExpire, else 2.weeks.ago).",
)
@click.option(
    "--no-reflog", is_flag=True, help="Do not keep what only reflog entries (besides the stash) reach."
)
def prune(force: bool, verbose: bool, expire: str | None, no_reflog: bool) -> None:
    """Delete local tensors that no ref, reflog, stash, worktree HEAD or index refers to."""
    from git_theta.commands.prune import prune as run
    from git_theta.diffs.render import fmt_bytes

    report = run(force, expire=expire, reflog=not no_reflog)
    verb = "deleted" if force else "would delete"
    if verbose:
        for oid, size in sorted(report.delete.items()):
            click.echo(f"{verb} {oid} ({fmt_bytes(size)})")
    hint = "" if force or not report.delete else " (run with --force to delete)"
    if report.stale_temp_files:
        click.echo(f"{verb} {report.stale_temp_files} stale temporary file(s) left by interrupted commands")
    if report.replaced_bytes:
        click.echo(f"{verb} {fmt_bytes(report.replaced_bytes)} of checkpoints replaced in the work tree")
    if report.recent:
        click.echo(
            f"spared {report.recent} unreferenced object(s), {fmt_bytes(report.recent_bytes)}, written since "
            f"{report.expire} (--expire=now deletes them too; safe while no other git command runs)"
        )
    click.echo(
        f"{verb} {len(report.delete)} object(s), {fmt_bytes(sum(report.delete.values()))}; "
        f"kept {report.keep} object(s), {fmt_bytes(report.keep_bytes)}{hint}"
    )


@main.command()
@click.argument("revs", nargs=-1)
@click.option("--no-fetch", is_flag=True, help="Do not try to fetch objects missing locally.")
def fsck(revs: tuple[str, ...], no_fetch: bool) -> None:
    """Check every tensor the models in REV... (default: all refs) refer to; non-zero exit on damage."""
    from git_theta.commands.fsck import fsck as run

    checked, problems = run(list(revs), fetch=not no_fetch)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"checked {checked} object(s): {len(problems) or 'no'} problem(s)")
    _note_if_not_set_up()
    if problems:
        sys.exit(1)


@main.command()
@click.argument("args", nargs=-1)
@click.option(
    "--cached", "--staged", "cached", is_flag=True, help="Compare a revision (HEAD) with the index."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--stat", "as_stat", is_flag=True, help="One line per changed parameter, largest relative change first."
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Hide modified parameters whose relative change is below this.",
)
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Also write a bar chart (PNG)."
)
@click.option("--color/--no-color", default=None, help="Color the output (default: on a terminal).")
def diff(args, cached, as_json, as_stat, threshold, plot_path, color) -> None:
    """Show how tracked models changed: [REV_A] [REV_B] [-- PATH...]."""
    import json

    from git_theta.diffs import render
    from git_theta.diffs.revisions import diff as run
    from git_theta.diffs.revisions import split_args

    revs, paths = split_args(list(args))
    diffs = run(revs, paths, cached)  # refuses a working tree left as metadata
    _note_if_not_set_up()
    color = render.use_color() if color is None else color
    if as_json:
        click.echo(json.dumps({"files": [render.to_json(d, threshold) for d in diffs]}, indent=2))
    else:
        for d in diffs:
            out = render.stat(d, color, threshold) if as_stat else render.text(d, color, threshold)
            click.echo(out, nl=False, color=color)
    if plot_path:
        from git_theta.diffs.plot import plot

        n = plot(diffs, plot_path)
        click.echo(f"wrote {plot_path} ({n} parameters)", err=True)


@main.command("pre-push", hidden=True)
@click.argument("remote")
@click.argument("url", default="")
def pre_push(remote: str, url: str) -> None:
    """Run by the pre-push hook: upload the LFS objects of pushed commits."""
    from git_theta.commands.pre_push import pre_push as run

    sys.exit(run(remote, url, sys.stdin.read().splitlines()))


if __name__ == "__main__":
    from git_theta.errors import guarded

    sys.exit(guarded(main))
