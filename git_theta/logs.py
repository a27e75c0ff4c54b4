"""Logging for developers, controlled by GIT_THETA_LOG_LEVEL (default: WARNING)."""

import os
import sys
import threading
import time

# GIT_THETA_LOG_LEVEL's names, so a message below the level costs a comparison and no `logging`
# import: that import (with traceback, string and the rest) was ~4 ms of the ~50 ms of imports
# in every pre-push hook and filter start here, and almost every run logs nothing.
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}
_configured = False
_lock = threading.Lock()


def _threshold() -> int:
    level = os.environ.get("GIT_THETA_LOG_LEVEL", "WARNING").strip().upper()
    return int(level) if level.isdigit() else _LEVELS.get(level, 30)


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
        root.setLevel(_threshold())
        root.propagate = False


def shutdown() -> None:
    """Flush and close the handlers, where something was logged (`logging` may be half imported
    by another thread, e.g. the filter's warm-up import, when a process ends early)."""
    if _configured:
        import logging

        logging.shutdown()


class Logger:
    """A `logging.Logger` of the git_theta hierarchy that imports `logging` only for a message
    at or above GIT_THETA_LOG_LEVEL (read when the logger is made)."""

    def __init__(self, name: str):
        self.name, self.threshold = name, _threshold()

    def log(self, level: int, msg: str, *args, **kwargs) -> None:
        if level >= self.threshold:
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
        self.enabled = sys.stderr.isatty() and os.environ.get("GIT_THETA_PROGRESS", "1") != "0"
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
