"""Logging for developers, controlled by GIT_THETA_LOG_LEVEL (default: WARNING)."""

import sys
import threading
import time

_configured = False
_lock = threading.Lock()
_level: int | None = None


def threshold() -> int:
    """GIT_THETA_LOG_LEVEL (or theta.logLevel), read on the first message, so that a message below
    it costs a comparison and no `logging` import: that import (with traceback, string and the
    rest) was ~4 ms of the ~50 ms of imports in every pre-push hook and filter start here, and
    almost every run logs nothing. A bad value is said once on stderr and means WARNING: a
    logging setting does not stop a checkout."""
    global _level
    if _level is None:
        _level = 30  # while git config is read: a message logged meanwhile does not come back here
        from git_theta import config  # on the first message: the pre-push hook usually logs none
        from git_theta.errors import ThetaError

        try:
            _level = config.get_level("log_level")
        except ThetaError as exc:
            sys.stderr.write(f"git-theta: warning: {exc}; using WARNING\n")
    return _level


def _configure() -> None:
    """Send the git_theta hierarchy to stderr at GIT_THETA_LOG_LEVEL, once per process."""
    global _configured
    import logging

    with _lock:  # decoder threads log too: one handler, not one per thread that got here first
        if _configured:
            return
        _configured = True
        root = logging.getLogger("git_theta")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("git-theta[%(process)d] %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(threshold())
        root.propagate = False


def shutdown() -> None:
    """Flush and close the handlers, where something was logged (`logging` may be half imported
    by another thread, e.g. the filter's warm-up import, when a process ends early)."""
    if _configured:
        import logging

        logging.shutdown()


class Logger:
    """A `logging.Logger` of the git_theta hierarchy that imports `logging` only for a message
    at or above GIT_THETA_LOG_LEVEL (see threshold)."""

    def __init__(self, name: str):
        self.name = name

    def log(self, level: int, msg: str, *args, **kwargs) -> None:
        if level >= (_level if _level is not None else threshold()):
            import logging

            _configure()
            kwargs.setdefault("stacklevel", 3)
            logging.getLogger(self.name).log(level, msg, *args, **kwargs)

    def debug(self, msg: str, *args, **kwargs) -> None:
        self.log(10, msg, *args, **kwargs)

    def info(self, msg: str, *args, **kwargs) -> None:
        self.log(20, msg, *args, **kwargs)

    def warning(self, msg: str, *args, **kwargs) -> None:
        self.log(30, msg, *args, **kwargs)

    def error(self, msg: str, *args, **kwargs) -> None:
        self.log(40, msg, *args, **kwargs)

    def exception(self, msg: str, *args, **kwargs) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(40, msg, *args, **kwargs)


def get_logger(name: str = "git_theta") -> Logger:
    """A logger under the git_theta hierarchy (see Logger)."""
    return Logger(name)


class Progress:
    """A one-line progress counter on stderr, shown only on a TTY and only after a second."""

    def __init__(self, label: str, total: int, delay: float = 1.0):
        self.label, self.total, self.done = label, total, 0
        self.start = time.monotonic()
        self.delay = delay
        if sys.stderr.isatty():
            from git_theta import config

            self.enabled = config.get_bool("progress")
        else:
            self.enabled = False
        self.shown = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self.start >= self.delay:
            self.shown = True
            elapsed = time.monotonic() - self.start
            left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            eta = f", ETA {left:.0f}s" if self.done < self.total else ""
            sys.stderr.write(f"\rgit-theta: {self.label}: {self.done}/{self.total}{eta}   ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write(f"\rgit-theta: {self.label}: {self.done}/{self.total}, done\n")
            sys.stderr.flush()
