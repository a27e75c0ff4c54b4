"""`git-theta-filter clean|smudge PATH` (stdin -> stdout) and `git-theta-filter process`."""

import sys
import threading

# Before the import thread starts: dataclasses reads sys.modules["typing"] without the import lock,
# and found it half imported by that thread (AttributeError: typing.ClassVar) once nothing on the
# main thread imported typing first.
import typing  # noqa: F401

from git_theta.errors import ThetaError, describe, guarded

# Freed decode outputs kept for the next tensors (memory.recycle): GPT-2-small's checkout, 12
# interleaved rounds, 0.85 s against 0.89-0.93 s, 0.1-0.15 s less CPU; peak 335 MB against 313 MB.
RECYCLE_BYTES = 128 << 20
# What a filter process needs for its first request, imported on a thread while the main one
# waits for git (the start-up's git calls and the handshake): ~0.1 s of imports here.
_WARM = (
    "numpy",
    "git_theta.codec",
    "git_theta.filter.smudge",
    "git_theta.filter.clean",
    "git_theta.filter.direct",
    "git_theta.formats.safetensors",
)


def _warm_imports() -> None:
    import importlib

    for name in _WARM:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  the request that needs it imports it again and says why
            return


def _fail(path: str, exc: BaseException) -> None:
    """Raise `exc` again as the one line that names `path` (git_theta.errors.guarded says it)."""
    raise ThetaError(describe(exc, path)) from None


_freeing: threading.Thread | None = None
_replaced_dir: str | None = None


def _start() -> None:
    """What every filter run does first: git's answers for this process (two git calls, made
    before the heavier imports), allocator, logging, our hooks, stale direct checkouts."""
    from git_theta.filter import replaced
    from git_theta.git import repo

    repo.cache_config()  # one `git config --list` for this process, not one call per key
    repo.prime(
        ["hooks/pre-push", "hooks/post-checkout", "hooks/post-merge", "theta-direct-checkout", "index"]
        + [replaced.DIR]
    )
    global _freeing, _replaced_dir
    try:  # files git just let go of, freed while this process decodes (filter.replaced)
        _replaced_dir = repo.git_path(replaced.DIR)
        _freeing = replaced.free_in_background(_replaced_dir)
    except ThetaError:  # outside a repository
        pass
    repo.config_snapshot()  # read now, while the import thread has the interpreter
    from git_theta import memory
    from git_theta.filter.direct import move_stale
    from git_theta.git.hooks import ensure_hooks

    memory.tune_allocator()
    memory.recycle(RECYCLE_BYTES)
    ensure_hooks()  # git-lfs does the same: a fresh clone gets the hooks on its first checkout
    move_stale()  # paths a killed filter left as metadata: the next hook writes them


def main() -> None:
    """Entry point: `process` (what git runs for every command) goes straight to the protocol,
    without click (~25 ms of imports) and ends without the interpreter's teardown; everything
    else through the click commands. Either way a failure is one line, exit 1 (errors.guarded)."""
    process = sys.argv[1:] == ["process"]
    if process:
        threading.Thread(target=_warm_imports, name="git-theta-imports", daemon=True).start()
    code = guarded(_start_process if process else _cli)
    _free_replaced()
    if process:
        from git_theta.procs import exit_now

        exit_now(code)
    sys.exit(code)


def _start_process() -> None:
    _start()
    process_cmd()


def _free_replaced() -> None:
    """Wait for the start's freeing, then free what git let go of after this process started (a
    command that ran the clean filter before it replaced the file): nothing to do on most runs."""
    if _freeing is not None:
        _freeing.join()
    if _replaced_dir is not None:
        from git_theta.filter import replaced

        replaced.free(_replaced_dir)


def _cli() -> None:
    import click

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """The git clean/smudge filter of git-theta (git runs this; you rarely need to)."""
        _start()

    cli.add_command(click.command("clean")(click.argument("path")(clean_cmd)))
    cli.add_command(click.command("smudge")(click.argument("path")(smudge_cmd)))
    cli.add_command(click.command("process")(process_cmd))
    cli()


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
        spool.check_unchanged(path)
    except Exception as exc:
        _fail(path, exc)
    finally:
        spool.close()
    sys.stdout.buffer.write(out)


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


def process_cmd() -> None:
    """Serve git's long-running filter protocol on stdin/stdout."""
    from git_theta.filter.process import serve

    try:
        sys.exit(serve())
    except Exception as exc:
        _fail("git-theta-filter process", exc)


if __name__ == "__main__":
    main()
