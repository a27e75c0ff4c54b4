"""Low-memory checkouts: git keeps a smudge filter's whole output in memory before it writes the
file, so a checkpoint too large for that is left as its metadata by the filter, its path noted,
and written to disk tensor by tensor by the post-checkout/post-merge hook
(`git theta checkout-models --pending`), or by that command run by hand.
"""

import fcntl
import os

from git_theta import config
from git_theta.filter.spool import spill_threshold
from git_theta.git import repo
from git_theta.git.hooks import PENDING
from git_theta.metadata import Metadata


def model_bytes(meta: Metadata) -> int:
    """Size of the checkpoint's tensors once written."""
    return sum(e.nbytes for e in meta.params.values())


def should_defer(meta: Metadata) -> bool:
    """GIT_THETA_LOW_MEMORY=1, or a model larger than the share of memory git may hold."""
    return config.get_bool("low_memory") or model_bytes(meta) > spill_threshold()


def _pending_file(cwd: str | None) -> str:
    return repo.git_path(PENDING, cwd)


def record(path: str, cwd: str | None = None) -> None:
    """Note that `path` (relative to the top) was left as metadata."""
    with open(_pending_file(cwd), "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(path + "\n")


def take(cwd: str | None = None) -> list[str]:
    """The noted paths (each once, in order), clearing the note."""
    name = _pending_file(cwd)
    if not os.path.exists(name):
        return []
    with open(name, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        paths = list(dict.fromkeys(line.strip() for line in f if line.strip()))
        f.seek(0)
        f.truncate()
    return paths
