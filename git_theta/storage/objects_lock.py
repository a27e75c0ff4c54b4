"""The lock between commands that write LFS objects and `git theta prune`, which deletes them.

An object a command has just written is referenced by nothing until git records it (the index
after `git add`, a commit after `git_theta.save`, the merge result after the merge driver), so a
prune that ran in between would delete it and the commit would point at nothing. Writers hold
this lock shared, from before their first object until what refers to it is recorded or they
exit; prune holds it exclusive while it decides what to keep and deletes, so it waits for every
running writer and writers wait for it. What no lock can cover (git records a merge driver's
output after the driver has exited) is covered by prune's grace period (theta.pruneExpire).

One flock(2) on $GIT_COMMON_DIR/theta/objects.lock: shared by all worktrees, released by the
kernel when a holder dies, so a killed command never leaves it taken.
"""

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from typing import IO

from git_theta import config
from git_theta.errors import ThetaError
from git_theta.git import repo

_held: dict[str, IO] = {}  # common dir -> the file a long-running process holds shared


def lock_path(cwd: str | None = None) -> str:
    """Where the lock lives: the repository's common git dir, so every worktree shares it."""
    return os.path.join(repo.common_dir(cwd), "theta", "objects.lock")


def _open(cwd: str | None) -> IO | None:
    """The lock file, created if need be; None where the repository cannot be written (a
    read-only store: nothing can be stored there, and checkouts of what is there still work)."""
    path = lock_path(cwd)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "a")
    except OSError:
        try:
            return open(path)
        except OSError:
            return None


def take(lock: IO, mode: int, waiting: str, gave_up: str, timeout: float | None = None) -> None:
    """flock `lock` in `mode`; says `waiting` on stderr at once if it has to wait, and raises
    ThetaError(`gave_up`) after `timeout` seconds (default GIT_THETA_LOCK_TIMEOUT, 300)."""
    try:
        fcntl.flock(lock, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    timeout = config.get_float("lock_timeout") if timeout is None else timeout
    sys.stderr.write(f"git-theta: {waiting} ({lock.name})\n")
    sys.stderr.flush()
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.05)
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ThetaError(f"{gave_up} after waiting {timeout:g} s ({lock.name})") from None


_WRITER_WAITS = "waiting for `git theta prune` to finish before storing tensors"
_WRITER_GIVES_UP = "`git theta prune` still runs; try again when it has finished"


@contextlib.contextmanager
def writing(cwd: str | None = None) -> Iterator[None]:
    """Hold the lock shared while objects are written and until what refers to them is recorded."""
    lock = _open(cwd)
    if lock is None:
        yield
        return
    with lock:
        take(lock, fcntl.LOCK_SH, _WRITER_WAITS, _WRITER_GIVES_UP)
        yield  # closing the file releases the lock


def hold_while_running(cwd: str | None = None) -> None:
    """Hold the lock shared until this process exits (the filter process: git records what it
    wrote - the index, a commit - before it stops the filter at its own exit)."""
    common = repo.common_dir(cwd)
    if common in _held:
        return
    lock = _open(cwd)
    if lock is not None:
        take(lock, fcntl.LOCK_SH, _WRITER_WAITS, _WRITER_GIVES_UP)
        _held[common] = lock


@contextlib.contextmanager
def pruning(cwd: str | None = None) -> Iterator[None]:
    """Hold the lock exclusive: no command is writing objects, none starts until this ends."""
    lock = _open(cwd)
    if lock is None:
        raise ThetaError(f"cannot create {lock_path(cwd)}; prune needs to write the repository")
    with lock:
        take(
            lock,
            fcntl.LOCK_EX,
            "waiting for running git-theta commands (git add, checkout, merge, git_theta.save) "
            "to record the tensors they are storing before deciding what to prune",
            "another git-theta command is still storing tensors; prune deleted nothing, try again later",
        )
        yield
