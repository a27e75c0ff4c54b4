"""Writing the index and committing by plumbing: blobs at given paths on top of HEAD without touching
other staged changes, and turns on the index for concurrent writers."""

import contextlib
import fcntl
import os
import sys
import tempfile
import time

from git_theta import config
from git_theta.errors import ThetaError
from git_theta.git import repo


def write_blob(data: bytes, cwd: str) -> str:
    """Store `data` as a git blob; its sha."""
    return repo.run(["hash-object", "-w", "--stdin"], cwd=cwd, input=data).decode().strip()


def current_branch_ref(top: str) -> str | None:
    """refs/heads/NAME of the checked-out branch (None when HEAD is detached)."""
    out = repo.run(["symbolic-ref", "-q", "HEAD"], cwd=top, check=False).decode().strip()
    return out or None


def commit_paths(top: str, blobs: dict[str, str], message: str, ref: str = "HEAD") -> str:
    """A commit of `ref`'s tree with `blobs` (path -> blob sha) put in; `ref` moves to it.

    A temporary index is used, so whatever else the user has staged stays staged and out of
    the commit; when `ref` is what is checked out, the real index then records the committed
    blobs for those paths. Another branch (refs/heads/NAME) is committed to without checkout.
    """
    if ref != "HEAD" and ref == current_branch_ref(top):
        ref = "HEAD"
    fd, index = tempfile.mkstemp(prefix="theta-index-", dir=repo.git_path("", cwd=top))
    os.close(fd)
    os.remove(index)  # git wants to create it
    env = dict(os.environ, GIT_INDEX_FILE=index)
    try:
        # a branch that does not exist yet starts from HEAD
        start = ref if repo.is_commit(ref, cwd=top) else ("HEAD" if repo.is_commit("HEAD", cwd=top) else None)
        repo.run(["read-tree", start] if start else ["read-tree", "--empty"], cwd=top, env=env)
        for path, blob in blobs.items():
            repo.run(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=top, env=env)
        tree = repo.run(["write-tree"], cwd=top, env=env).decode().strip()
    finally:
        if os.path.exists(index):
            os.remove(index)
    parents = ["-p", start] if start else []
    commit = (
        repo.run(["commit-tree", tree, *parents, "-F", "-"], cwd=top, input=message.encode()).decode().strip()
    )
    subject = message.splitlines()[0] if message else ""
    repo.run(["update-ref", "-m", f"commit: {subject}", ref, commit], cwd=top)
    if ref == "HEAD":
        for path, blob in blobs.items():
            repo.run(["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"], cwd=top)
    return commit


def _say(text: str) -> None:
    """One line on stderr at once (a wait must never be silent)."""
    sys.stderr.write(f"git-theta: {text}\n")
    sys.stderr.flush()


def _wait_for_index_lock(index_lock: str, deadline: float, timeout: float) -> None:
    """Wait while another git command holds index.lock; say so at once, and fail clearly on timeout."""
    if not os.path.exists(index_lock):
        return
    _say(
        f"waiting for {index_lock} (another git process is writing the index); "
        "if no other git process is running, remove that file"
    )
    while os.path.exists(index_lock):
        if time.monotonic() > deadline:
            raise ThetaError(
                f"{index_lock} still exists after {timeout:g} s: if no other git process is running, "
                "remove that file and run the command again"
            )
        time.sleep(0.1)


@contextlib.contextmanager
def index_turn(timeout: float | None = None, cwd: str | None = None):
    """Take turns on the index: concurrent `git theta add`s queue here (git itself refuses a
    second writer at once), and wait while another git command holds index.lock."""
    if timeout is None:
        timeout = config.get_float("lock_timeout")
    lock_path = repo.git_path("theta-index.lock", cwd)
    index_lock = repo.git_path("index.lock", cwd)
    with open(lock_path, "a") as lock:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    waiting = True
                    _say(f"waiting for another git theta add to finish with the index ({lock_path})")
                if time.monotonic() > deadline:
                    raise ThetaError(
                        f"another git theta add held the index for {timeout:g} s ({lock_path}); try again"
                    ) from None
                time.sleep(0.1)
        try:
            _wait_for_index_lock(index_lock, deadline, timeout)
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
