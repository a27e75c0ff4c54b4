"""Git's long-running filter protocol (filter.<driver>.process): one process per git command.

The interpreter, numpy and tensorstore load once, and every tracked file of the command goes
through the same process.
"""

import os
import sys
from typing import BinaryIO

from git_theta.errors import ThetaError, describe
from git_theta.filter.context import pass_through
from git_theta.filter.spool import Spool
from git_theta.git import pktline, repo
from git_theta.logs import get_logger
from git_theta.storage import objects_lock

log = get_logger(__name__)


def _handshake(r: BinaryIO, w: BinaryIO) -> None:
    hello = pktline.read_text_list(r)
    if not hello or hello[0] != "git-filter-client" or "version=2" not in hello[1:]:
        raise ThetaError("git-theta-filter process: unexpected handshake from git")
    pktline.write_text(w, "git-filter-server", "version=2")
    pktline.write_flush(w)
    caps = pktline.read_text_list(r)
    pktline.write_text(w, *[c for c in ("capability=clean", "capability=smudge") if c in caps])
    pktline.write_flush(w)
    w.flush()


def _respond_error(w: BinaryIO, path: str, exc: BaseException, commit: str | None = None) -> None:
    text = describe(exc, path)
    if commit:  # git names the commit being checked out (treeish/ref): say which version failed
        text += f" (checking out {path} at {commit[:12]})"
    sys.stderr.write(f"git-theta: {text}\n")
    sys.stderr.flush()
    pktline.write_text(w, "status=error")
    pktline.write_flush(w)
    w.flush()


def _widen_pipe(stream: BinaryIO) -> None:
    """A 1 MiB pipe to or from git instead of 64 KiB: fewer context switches on large checkouts
    and adds (git writes a checkpoint to us in 64 KiB packets)."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


def serve(r: BinaryIO | None = None, w: BinaryIO | None = None) -> int:
    """Answer git's clean and smudge requests until git closes the pipe."""
    r = r or sys.stdin.buffer
    w = w or sys.stdout.buffer
    _handshake(r, w)
    _widen_pipe(w)
    _widen_pipe(r)
    locked = False
    tmp_dir = os.path.join(repo.common_dir(), "theta", "tmp")
    try:
        return _serve_requests(r, w, tmp_dir, locked)
    finally:  # git closed the pipe: it has written its index; put direct checkouts in place
        from git_theta.filter import direct

        direct.finish()


def _serve_requests(r: BinaryIO, w: BinaryIO, tmp_dir: str, locked: bool) -> int:
    while True:
        try:
            headers = pktline.read_key_values(r)
        except EOFError:
            return 0
        command, path = headers.get("command"), headers.get("pathname", "")
        if not locked:  # until git, which records what we store, exits: see storage.objects_lock
            objects_lock.hold_while_running()
            locked = True
        commit = headers.get("treeish") or headers.get("ref")
        # git streams the work tree's file for clean (cwd is the work tree's top): see Spool
        spool = Spool(tmp_dir, source=path if command == "clean" and path else None)
        try:
            content = pktline.read_content(r, spool).view()
            _serve_one(w, command, path, content, spool.release, commit, spool.check_unchanged)
        finally:
            spool.close()


def _serve_one(
    w: BinaryIO,
    command: str | None,
    path: str,
    content: memoryview,
    release=None,
    commit: str | None = None,
    check_unchanged=None,
) -> None:
    """Answer one request whose content has been read (`release`: see clean; `check_unchanged`:
    Spool.check_unchanged, run once the content has been used)."""
    if command not in ("clean", "smudge"):
        _respond_error(w, path, ThetaError(f"unsupported filter command {command!r}"))
        return
    try:
        if command == "clean":
            from git_theta.filter.clean import clean

            result = clean(content, path, release=release)
            if check_unchanged is not None:
                check_unchanged(path)
            write = lambda out: out.write(result)  # noqa: E731
        elif pass_through():  # metadata stays as it is: no heavy imports
            result = bytes(content)
            write = lambda out: out.write(result)  # noqa: E731
        else:
            from git_theta.filter.smudge import prepare_for_git

            write = prepare_for_git(content, path)
    except Exception as exc:  # expected failures are ThetaErrors; others are reported too
        _respond_error(w, path, exc, commit)
        return
    del content
    pktline.write_text(w, "status=success")
    pktline.write_flush(w)
    sink = pktline.ContentWriter(w)
    try:
        write(sink)
    except Exception as exc:  # mid-stream: git discards the partial content on status=error
        sink.close()
        _respond_error(w, path, exc, commit)
        return
    sink.close()
    pktline.write_flush(w)
    w.flush()
