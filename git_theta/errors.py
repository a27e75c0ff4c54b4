"""User-facing errors: one clear line naming the file and the fix, never a traceback; and the
boundary every entry point runs in (guarded)."""

import sys
from collections.abc import Callable  # loaded anyway: subprocess imports it

MAX_MESSAGE = 600  # characters: a value pasted into a message must not flood the terminal


def shorten(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: for values from files we did not write."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ThetaError(Exception):
    """An expected failure whose message is shown to the user as is (one line, bounded length)."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        text = (f"{path}: {message}" if path else message).replace("\n", " ")
        if len(text) > MAX_MESSAGE:  # keep the start (what) and the end (the fix)
            text = text[: MAX_MESSAGE // 2] + " ... " + text[-MAX_MESSAGE // 2 :]
        super().__init__(text)


class CheckpointError(ThetaError):
    """A checkpoint that cannot be read: unknown, corrupt, truncated or unsafe."""


class MissingObjectError(ThetaError):
    """An LFS object that is neither local nor fetchable."""


class CorruptObjectError(ThetaError):
    """A stored object whose content does not match its checksum (fsck counts these as corrupt)."""


def user_message(exc: BaseException) -> "ThetaError | None":
    """The one-line error a command shows for `exc` (a ThetaError, or a file-system failure
    from_os_error knows); None for anything else, which is a bug to report."""
    if isinstance(exc, ThetaError):
        return exc
    return from_os_error(exc) if isinstance(exc, OSError) else None


def describe(exc: BaseException, path: str | None = None) -> str:
    """The one line a user sees for `exc`: an expected failure's own message (`path` names the
    file where the error does not), else a short note naming the exception and pointing at
    GIT_THETA_LOG_LEVEL=DEBUG, which logs the traceback (logged here)."""
    known = from_os_error(exc, path) if isinstance(exc, OSError) else user_message(exc)
    if known is not None:
        return str(known)
    from git_theta.logs import get_logger

    get_logger("git_theta").debug("unexpected failure", exc_info=exc)
    return str(
        ThetaError(
            f"internal error ({type(exc).__name__}: {exc}); rerun with "
            "GIT_THETA_LOG_LEVEL=DEBUG for the traceback, and report it",
            path,
        )
    )


def guarded(work: Callable[[], object], prog: str = "git-theta") -> int:
    """The error boundary every entry point (CLI, hooks, filter, diff and merge drivers, the
    merge-CLI plug-in) runs its work in: run `work()` and return the exit code: its own
    (sys.exit, click's), 1 after an expected failure said in one line on stderr (a ThetaError,
    or a file-system failure such as a full disk), 1 after an unexpected one said in one line
    that points at GIT_THETA_LOG_LEVEL=DEBUG for the traceback, 130 on Ctrl-C."""
    try:
        work()
        return 0
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        sys.stderr.write(f"{exc.code}\n")  # sys.exit("message"), as the interpreter says it
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        sys.stderr.write(f"{prog}: error: {describe(exc)}\n")
        return 1


def from_os_error(exc: OSError, path: str | None = None) -> "ThetaError | None":
    """A clear message for the file-system failures users meet (disk full, read-only, no
    permission), naming the file and the fix; None for other errors."""
    import errno

    where = exc.filename or "the repository"
    fixes = {
        errno.ENOSPC: f"no space left on the device holding {where}; free space (`git theta prune` "
        "drops unreferenced objects) and run the command again",
        errno.EDQUOT: f"disk quota exceeded writing {where}; free space and run the command again",
        errno.EROFS: f"{where} is on a read-only file system; git-theta must write .git/lfs to store "
        "tensors (checkouts of objects already there still work)",
        errno.EACCES: f"permission denied on {where}; fix its permissions or owner and run the command again",
        errno.EPERM: f"operation not permitted on {where}; fix its permissions or owner and run the command again",
        errno.EFBIG: f"{where} would exceed the file size limit (ulimit -f); raise it and run the command again",
    }
    message = fixes.get(exc.errno)
    return ThetaError(message, path) if message else None
