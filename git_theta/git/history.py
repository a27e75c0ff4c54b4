"""Metadata files across history: which blobs hold git-theta metadata, and in which commits."""

import subprocess
import threading
from collections.abc import Iterator

from git_theta import metadata
from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.metadata import Metadata, is_metadata

_PEEK = 4096  # bytes read from the start of a blob too large to be metadata, to tell what it is


def read_blobs(shas: list[str], cwd: str, first: bytes = b"") -> Iterator[tuple[str, bytes]]:
    """(sha, contents) for each blob, streamed through one `git cat-file --batch` (one blob in
    memory at a time); with `first`, only the blobs whose contents start with it (others are
    read past, never held)."""
    if not shas:
        return
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    feeder = threading.Thread(target=_feed, args=(proc.stdin, shas), daemon=True)
    feeder.start()
    out = proc.stdout
    try:
        while header := out.readline():
            parts = header.split()
            if len(parts) < 3:  # "<sha> missing"
                continue
            size = int(parts[2])
            head = out.read(min(size, max(len(first), 1)))
            if head.startswith(first):
                yield parts[0].decode(), head + out.read(size - len(head))
            else:
                _skip(out, size - len(head))
            out.read(1)  # the newline after the contents
    finally:
        out.close()
        proc.kill()
        proc.wait()
        feeder.join()


def _feed(stdin, shas: list[str]) -> None:
    try:
        for i in range(0, len(shas), 1000):
            stdin.write("".join(f"{sha}\n" for sha in shas[i : i + 1000]).encode())
        stdin.close()
    except (BrokenPipeError, ValueError):  # the reader stopped early
        pass


def _skip(stream, n: int) -> None:
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            return
        n -= len(chunk)


def small_blobs(rev_list_args: list[str], cwd: str, what: str = "git theta") -> list[str]:
    """Blobs small enough to be metadata among `git rev-list --objects ARGS`.

    The limit is metadata.MAX_METADATA, the one clean writes up to and the parser accepts, so
    nothing git-theta wrote is skipped. A larger blob that still starts like metadata (hand-made,
    or from another version) stops `what` with a ThetaError: skipping it would drop its tensors
    (prune would delete them, a push would leave them behind)."""
    out = repo.run(["rev-list", "--objects", *rev_list_args], cwd=cwd)
    shas = [line.split(" ", 1)[0] for line in out.decode().splitlines() if " " in line]
    small = []
    for sha, size in blob_sizes(shas, cwd).items():
        if size <= metadata.MAX_METADATA:
            small.append(sha)
        elif looks_like_metadata(_head_of(sha, cwd)):
            raise ThetaError(
                f"blob {sha[:12]} ({size >> 20} MiB) looks like git-theta metadata but is larger than "
                f"the {metadata.MAX_METADATA >> 20} MiB limit, so its tensors cannot be read; {what} "
                "stops rather than skip them (find it with `git log --all --find-object=" + sha[:12] + "`)"
            )
    return small


def looks_like_metadata(head: bytes) -> bool:
    """True when the first bytes of a file are those of git-theta metadata (any version)."""
    head = head.lstrip()
    if head[:1] != b"{":
        return False
    # the notice (first since 0.3), the version key, or the first key of older files
    return (
        metadata.NOTICE.encode() in head
        or b'"git_theta"' in head
        or head[1:].lstrip().startswith(b'"checkpoint"')
    )


def _head_of(sha: str, cwd: str) -> bytes:
    """The first _PEEK bytes of a blob, without reading the rest."""
    proc = subprocess.Popen(["git", "cat-file", "blob", sha], cwd=cwd, stdout=subprocess.PIPE)
    try:
        return proc.stdout.read(_PEEK)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def blob_sizes(shas: list[str], cwd: str) -> dict[str, int]:
    """sha -> size of those of `shas` that are blobs, through one `git cat-file --batch-check`."""
    if not shas:
        return {}
    check = repo.run(["cat-file", "--batch-check"], cwd=cwd, input="\n".join(shas).encode() + b"\n")
    sizes = {}
    for line in check.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob":
            sizes[parts[0]] = int(parts[2])
    return sizes


def metadata_in(blobs: list[str], cwd: str) -> Iterator[tuple[str, Metadata]]:
    """(blob sha, metadata) for the blobs that are git-theta metadata."""
    for sha, body in read_blobs(blobs, cwd, first=b"{"):
        if is_metadata(body):
            yield sha, Metadata.loads(body)


def lfs_pointer_oids(blobs: list[str], cwd: str) -> set[str]:
    """oids named by plain Git LFS pointer files among `blobs` (other tools' objects)."""
    found = set()
    for _, body in read_blobs(blobs, cwd, first=b"version https://git-lfs.github.com/spec/v1"):
        if len(body) < 1024:
            for line in body.decode("utf-8", "replace").splitlines():
                if line.startswith("oid sha256:"):
                    found.add(line[len("oid sha256:") :].strip())
    return found


def metadata_by_commit(rev_list_args: list[str], cwd: str) -> dict[str, tuple[str, str]]:
    """blob sha -> (commit, path) where each metadata-sized blob first appears in history."""
    out = repo.run(
        ["log", "-m", "--raw", "--no-abbrev", "--no-renames", "--format=commit %H", *rev_list_args], cwd=cwd
    ).decode()
    where: dict[str, tuple[str, str]] = {}
    commit = ""
    for line in out.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.startswith(":"):
            meta, _, path = line.partition("\t")
            new = meta.split()[3]
            if new != repo.ZERO:
                where.setdefault(new, (commit, path))
    return where
