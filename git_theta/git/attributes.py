"""The repository's .gitattributes lines that route checkpoints through git-theta."""

import os
import subprocess

ATTRIBUTES = "filter=theta diff=theta merge=theta -text"


def escape_pattern(pattern: str) -> str:
    """Spaces are not allowed in .gitattributes patterns: spell them as git-lfs does."""
    return pattern.replace(" ", "[[:space:]]")


def _read(path: str) -> list[str]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def _write(path: str, lines: list[str]) -> None:
    tmp = path + ".theta-tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)


def add_pattern(gitattributes: str, pattern: str) -> bool:
    """Track `pattern`; an existing line for it is replaced, not duplicated. True if changed."""
    lines = _read(gitattributes)
    wanted = f"{pattern} {ATTRIBUTES}"
    out, found = [], False
    for line in lines:
        parts = line.split()
        if parts and parts[0] == pattern and not line.lstrip().startswith("#"):
            if not found:
                out.append(wanted)
            found = True
            continue
        out.append(line)
    if not found:
        out.append(wanted)
    if out == lines:
        return False
    _write(gitattributes, out)
    return True


def remove_pattern(gitattributes: str, pattern: str) -> bool:
    """Stop tracking `pattern`. True if a line was removed."""
    lines = _read(gitattributes)
    out = [line for line in lines if not (line.split()[:1] == [pattern] and "filter=theta" in line)]
    if out == lines:
        return False
    _write(gitattributes, out)
    return True


def tracked_paths(paths: list[str], cwd: str) -> list[str]:
    """The subset of `paths` whose filter attribute is theta (attributes as git sees them)."""
    if not paths:
        return []
    proc = subprocess.run(
        ["git", "check-attr", "-z", "--stdin", "filter"],
        cwd=cwd,
        input="\0".join(paths).encode() + b"\0",
        capture_output=True,
        check=True,
    )
    fields = proc.stdout.split(b"\0")
    out = []
    for i in range(0, len(fields) - 2, 3):
        if fields[i + 2] == b"theta":
            out.append(fields[i].decode())
    return out
