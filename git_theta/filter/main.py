"""`git-theta-filter clean|smudge PATH` (stdin -> stdout) and `git-theta-filter process`."""

import sys

import click

from git_theta.errors import ThetaError, from_os_error
from git_theta.logs import get_logger


def _fail(path: str, exc: BaseException) -> None:
    """One line on stderr and exit 1; the traceback only in the debug log."""
    if isinstance(exc, OSError):
        exc = from_os_error(exc, path) or exc
    if isinstance(exc, ThetaError):
        raise click.ClickException(str(exc)) from None
    get_logger(__name__).debug("unexpected failure", exc_info=exc)
    raise click.ClickException(
        f"{path}: internal error ({type(exc).__name__}: {exc}); rerun with GIT_THETA_LOG_LEVEL=DEBUG and report it"
    ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """The git clean/smudge filter of git-theta (git runs this; you rarely need to)."""
    from git_theta.memory import tune_allocator

    tune_allocator()
    get_logger()
    from git_theta.git.hooks import ensure_hooks

    ensure_hooks()  # git-lfs does the same: a fresh clone gets the hooks on its first checkout
    from git_theta.filter.direct import move_stale

    move_stale()  # paths a killed filter left as metadata: the next hook writes them


@main.command("clean")
@click.argument("path")
def clean_cmd(path: str) -> None:
    """Read a checkpoint on stdin, store its tensors, write its metadata to stdout."""
    from git_theta.filter.clean import clean
    from git_theta.filter.spool import Spool
    from git_theta.storage import objects_lock

    spool = Spool(source=path)  # git runs us in the work tree's top, streaming that file
    try:
        while chunk := sys.stdin.buffer.read(1 << 20):
            spool.write(chunk)
        with objects_lock.writing():  # git records the result after we exit: prune's grace covers that
            out = clean(spool.view(), path, release=spool.release)
        if not spool.source_unchanged():
            raise ThetaError(f"{path} changed while git was adding it; run `git add {path}` again")
    except Exception as exc:
        _fail(path, exc)
    finally:
        spool.close()
    sys.stdout.buffer.write(out)


@main.command("smudge")
@click.argument("path")
def smudge_cmd(path: str) -> None:
    """Read metadata on stdin, write the checkpoint it describes to stdout."""
    from git_theta.filter.context import pass_through
    from git_theta.filter.smudge import prepare

    data = sys.stdin.buffer.read()
    try:
        if pass_through():
            sys.stdout.buffer.write(data)
            return
        prepare(data, path)(sys.stdout.buffer)
    except Exception as exc:
        _fail(path, exc)


@main.command("process")
def process_cmd() -> None:
    """Serve git's long-running filter protocol on stdin/stdout."""
    from git_theta.filter.process import serve

    try:
        sys.exit(serve())
    except Exception as exc:
        _fail("git-theta-filter process", exc)


if __name__ == "__main__":
    main()
