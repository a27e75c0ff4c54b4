"""Deferred checkouts: the filter leaves a checkpoint as its metadata and it is written to disk
later, outside git's pipe.

Low memory: git keeps a smudge filter's whole output in memory before it writes the file, so a
checkpoint too large for that is noted here and written tensor by tensor by the
post-checkout/post-merge hook (`git theta checkout-models --pending`, or that command by hand).

Speed ("direct checkout", filter.direct): piping every byte through pkt-lines into git, which
buffers and then writes it, costs more than decoding straight into the file; and the file git
writes lands in the same second as the index, so the next git command re-reads all of it through
the clean filter ("racily clean"). Only under commands that write the index before closing the
filter and never read the file back (checkout, switch, restore, clone); `git reset --hard`,
`git stash`, merges and the rest get the whole file through the filter as before.
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


DIRECT_MIN_BYTES = 64 << 20  # `auto`: below this the hook's start-up (~0.4 s) outweighs the pipe


def should_write_directly(meta: Metadata) -> bool:
    """GIT_THETA_DIRECT_CHECKOUT (`auto`, the default: models of 64 MiB and more; `0`; `1`), and the git
    command running this filter is one that writes the index before it closes the filter and
    never reads the file back (checkout, switch, restore, clone)."""
    from git_theta.filter.context import under_hooked_command

    switch = config.get_switch("direct_checkout")
    if switch is False or (switch is None and model_bytes(meta) < DIRECT_MIN_BYTES):
        return False
    return under_hooked_command()


def _pending_file(cwd: str | None) -> str:
    return repo.git_path(PENDING, cwd)


def record(path: str, cwd: str | None = None) -> None:
    """Note that `path` (relative to the top) was left as metadata."""
    with open(_pending_file(cwd), "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(path + "\n")


def take(cwd: str | None = None) -> list[str]:
    """The noted paths (each once, in order), clearing the note; with those a killed filter
    process left half written (filter.direct)."""
    from git_theta.filter import direct

    name = _pending_file(cwd)
    top = repo.root(cwd)
    if os.path.exists(repo.git_path(direct.NOTE, top)):
        for path in direct.stale(top):
            record(path, cwd)
    if not os.path.exists(name):
        return []
    with open(name, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        paths = list(dict.fromkeys(line.strip() for line in f if line.strip()))
        f.seek(0)
        f.truncate()
    return paths
