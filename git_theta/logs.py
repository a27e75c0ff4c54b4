"""Logging for developers, controlled by GIT_THETA_LOG_LEVEL (default: WARNING)."""

import logging
import os
import sys
import time

_CONFIGURED = False


def get_logger(name: str = "git_theta") -> logging.Logger:
    """Return a logger under the git_theta hierarchy, configuring the root once."""
    global _CONFIGURED
    if not _CONFIGURED:
        _CONFIGURED = True
        level = os.environ.get("GIT_THETA_LOG_LEVEL", "WARNING").upper()
        root = logging.getLogger("git_theta")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("git-theta[%(process)d] %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(getattr(logging, level, logging.WARNING))
        root.propagate = False
    return logging.getLogger(name)


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
