"""Process-tree facts read from /proc (Linux): parents, command lines, descendants; and a fast exit."""

import os
import signal


def exit_now(code: int) -> None:
    """End this process without the interpreter's teardown, once what it wrote is flushed: git
    waits for its filter process and its hooks to exit, and unloading numpy, numcodecs and the
    thread pools took 43-63 ms of every checkout here against 3-5 ms. For a process whose work
    (files, locks) is complete."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    from git_theta import logs

    logs.shutdown()
    os._exit(code)


def parent(pid: int) -> int | None:
    """The parent pid of `pid`, or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            p = parent(int(entry))
            if p is not None:
                children.setdefault(p, []).append(int(entry))
    todo, victims = [pid], []
    while todo:
        p = todo.pop()
        victims.append(p)
        todo.extend(children.get(p, []))
    for p in victims:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
