"""Direct checkout, done by the filter process itself: the checkpoint is decoded straight into a
temp file beside the target (and synced) while git waits for the smudge reply, then git gets the
metadata; when git closes the pipe (at its exit, after it has written the index and run its hooks,
and before it returns: git waits for its filter processes) the temp file replaces the metadata git
wrote and the index entry gets its stat (git.index_stat), so nothing re-reads the file afterwards.

The file is written before git gets its reply so that a write that fails (a corrupt object, a full
disk) fails the smudge: git reports it and exits non-zero, as without direct checkout. What is
left for the pipe's close is a rename and an index entry update. Doing it here rather than in the
post-checkout hook saves the hook's interpreter start and imports (0.3-0.6 s here). If the filter
is killed first, the note in `theta-direct-checkout` (pid and path) outlives it:
`deferred.take()` hands such stale paths to the next `git theta checkout-models --pending`, which
the next checkout's hook runs (see move_stale).
"""

import fcntl
import os
import sys
import tempfile
from dataclasses import dataclass

from git_theta.filter import deferred, replaced
from git_theta.git import index_stat, repo
from git_theta.logs import get_logger

log = get_logger(__name__)
NOTE = "theta-direct-checkout"  # under the git dir: "pid<TAB>path" of writes in progress


@dataclass
class _Job:
    top: str
    path: str
    data: bytes  # the metadata git writes to the work tree
    tmp: str


_jobs: list[_Job] = []


def _note(top: str) -> str:
    return repo.git_path(NOTE, top)


def start(data, path: str, write, cwd: str | None = None) -> None:
    """Write the checkpoint `write(out)` produces for `path` into a temp file that finish() puts
    in place; a failure leaves nothing behind and propagates (the smudge fails)."""
    top = repo.root(cwd)
    full = os.path.join(top, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(full), prefix=".theta-")
    with open(_note(top), "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # other filter processes rewrite the note under this lock
        f.write(f"{os.getpid()}\t{path}\n")
    try:
        _write(fd, write)
    except BaseException:
        _unlink(tmp)
        _drop_note(top, path)
        raise
    _jobs.append(_Job(top, path, bytes(data), tmp))


def _write(fd: int, write) -> None:
    """Write and sync the temp file."""
    from git_theta.filter.checkout import open_output  # storage and numpy: not needed to start a filter

    with open_output(fd) as out:
        write(out)
        out.flush()
        os.fsync(out.fileno())


def finish() -> None:
    """Put each written file in place (see the module's docstring)."""
    while _jobs:
        job = _jobs.pop(0)
        try:
            _put_in_place(job)
        except BaseException as exc:  # noqa: BLE001  the note keeps it for `checkout-models --pending`
            _unlink(job.tmp)
            deferred.record(job.path, job.top)
            sys.stderr.write(
                f"git-theta: {job.path}: could not be written ({exc}); it is left as metadata: "
                f"run `git theta checkout-models {job.path}`\n"
            )
        finally:
            _drop_note(job.top, job.path)


def _put_in_place(job: _Job) -> None:
    full = os.path.join(job.top, job.path)
    try:
        with open(full, "rb") as f:
            current = f.read(len(job.data) + 1)
    except OSError:
        current = None
    if current != job.data:  # git did not write it (a failed checkout), or it was changed since
        _unlink(job.tmp)
        return
    oid = index_stat.index_oids(job.top, [job.path]).get(job.path)
    index = repo.git_path("index", job.top)
    ours = oid is not None and index_stat.blob_id(job.data, len(oid)) == oid
    fd = os.open(job.tmp, os.O_RDONLY)
    try:
        if ours:
            index_stat.backdate(fd, index)
        mtime = os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
    if replaced.wanted(job.tmp):  # before the stat the index gets
        replaced.keep(job.tmp, repo.git_path(replaced.DIR, job.top))
    os.chmod(job.tmp, os.stat(full).st_mode & 0o7777)
    os.replace(job.tmp, full)
    if not ours:
        return  # the index names another version: git compares contents itself
    st = os.lstat(full)
    if st.st_mtime_ns != mtime or not index_stat.patch(index, job.path, oid, st):
        index_stat.record_stat(job.top, [job.path])


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _drop_note(top: str, path: str) -> None:
    name = _note(top)
    mine = f"{os.getpid()}\t{path}"
    try:
        with open(name, "r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            lines = [line for line in f.read().splitlines() if line and line != mine]
            f.seek(0)
            f.truncate()
            f.write("".join(line + "\n" for line in lines))
    except OSError:
        pass


def stale(top: str) -> list[str]:
    """Paths noted by filter processes that are gone (killed before they finished); the note
    keeps the live ones."""
    name = _note(top)
    if not os.path.exists(name):
        return []
    out, keep = [], []
    with open(name, "r+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        for line in f.read().splitlines():
            pid, _, path = line.partition("\t")
            if not path:
                continue
            if pid.isdigit() and _alive(int(pid)):
                keep.append(line)
            else:
                out.append(path)
        f.seek(0)
        f.truncate()
        f.write("".join(line + "\n" for line in keep))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def move_stale(cwd: str | None = None) -> None:
    """Hand paths a killed filter left half done to the pending note the hooks read; never fails."""
    try:
        top = repo.root(cwd)
        if not os.path.exists(_note(top)):
            return
        for path in stale(top):
            deferred.record(path, top)
    except Exception:  # noqa: BLE001  a convenience: the paths also show as metadata files
        pass
