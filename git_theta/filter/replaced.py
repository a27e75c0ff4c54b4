"""A checkpoint the filter writes itself (filter.direct) keeps a second hard link under the git dir,
so that git replacing it later costs a link, not the freeing of the file while git waits.

Git unlinks the old file before it starts the filter. On a file system that discards freed blocks
as it frees them (ext4 or XFS mounted with `discard`, common on cloud VMs), that unlink waits for
the disk: 0.10 s for a 498 MB file here, with no CPU, against 0.00 s when the file has a second
link or its blocks were never written. The next filter process frees the links nothing else holds
any more on a thread, while it decodes. A link left here holds disk space only once the work-tree
file is gone (replaced or deleted); the next filter process or `git theta prune --force` frees it.
Without online discard freeing costs little, and the link would only be a second name for the file
(which `cp -r` or `rsync -a` copy twice), so by default (GIT_THETA_KEEP_REPLACED=auto) it is kept
only on such file systems; `1` always, `0` never.
"""

import os
import threading

from git_theta import config
from git_theta.logs import get_logger

log = get_logger(__name__)
DIR = "theta-replaced"  # under the (per-worktree) git dir


def wanted(path: str) -> bool:
    """Whether the file at `path` should keep a second link (GIT_THETA_KEEP_REPLACED; `auto`: its
    file system discards freed blocks online)."""
    switch = config.get_switch("keep_replaced")
    if switch is not None:
        return switch
    try:
        return online_discard(os.stat(path).st_dev)
    except OSError:
        return False


def online_discard(device: int, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether the file system on `device` is mounted with `discard` (Linux; False elsewhere)."""
    key = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[2] != key or " - " not in line:
            continue
        super_options = line.split(" - ", 1)[1].split()
        options = fields[5].split(",") + (super_options[-1].split(",") if super_options else [])
        if "discard" in options:
            return True
    return False


def keep(path: str, where: str) -> None:
    """Give the file at `path` a second link in the folder `where`; on file systems without hard
    links (or across devices) nothing is kept and git frees the file itself, as before."""
    try:
        st = os.stat(path)
        os.makedirs(where, exist_ok=True)
        os.link(path, os.path.join(where, f"{st.st_dev:x}-{st.st_ino:x}"))
    except FileExistsError:
        pass
    except OSError as exc:
        log.debug("no second link for %s: %s", path, exc)


def free(where: str, dry_run: bool = False) -> int:
    """Remove the links in `where` that nothing else holds (the work-tree file was replaced or
    deleted), freeing those files (with `dry_run`, only count); the bytes freed."""
    freed = 0
    try:
        entries = list(os.scandir(where))
    except OSError:
        return 0
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if st.st_nlink <= 1:
                if not dry_run:
                    os.unlink(entry.path)
                freed += st.st_size
        except OSError:  # another process freed it first
            pass
    return freed


def free_in_background(where: str) -> threading.Thread | None:
    """free(where) on a thread (None when there is nothing to look at)."""
    if not os.path.isdir(where):
        return None
    thread = threading.Thread(target=free, args=(where,), name="git-theta-free", daemon=True)
    thread.start()
    return thread
