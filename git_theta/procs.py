"""Process-tree facts read from /proc (Linux): parents, command lines, descendants."""

import os
import signal


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
