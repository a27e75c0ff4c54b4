"""Metadata files across history: which blobs hold git-theta metadata, and in which commits."""

import subprocess
from collections.abc import Iterator

from git_theta.git import repo
from git_theta.metadata import Metadata, is_metadata

_MAX_METADATA_BLOB = 256 << 20
ZERO = "0" * 40


def read_blobs(shas: list[str], cwd: str) -> Iterator[tuple[str, bytes]]:
    """(sha, contents) for each blob, through one `git cat-file --batch`."""
    if not shas:
        return
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    data, _ = proc.communicate("\n".join(shas).encode() + b"\n")
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        header = data[pos:nl].split()
        if len(header) < 3:  # "<sha> missing"
            pos = nl + 1
            continue
        size = int(header[2])
        yield header[0].decode(), data[nl + 1 : nl + 1 + size]
        pos = nl + 1 + size + 1


def small_blobs(rev_list_args: list[str], cwd: str) -> list[str]:
    """Blobs small enough to be metadata among `git rev-list --objects ARGS`."""
    out = repo.run(["rev-list", "--objects", *rev_list_args], cwd=cwd)
    shas = [line.split(" ", 1)[0] for line in out.decode().splitlines() if " " in line]
    return [sha for sha, size in blob_sizes(shas, cwd).items() if size < _MAX_METADATA_BLOB]


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
    for sha, body in read_blobs(blobs, cwd):
        if body[:1] == b"{" and is_metadata(body):
            yield sha, Metadata.loads(body)


def lfs_pointer_oids(blobs: list[str], cwd: str) -> set[str]:
    """oids named by plain Git LFS pointer files among `blobs` (other tools' objects)."""
    found = set()
    for _, body in read_blobs(blobs, cwd):
        if body.startswith(b"version https://git-lfs.github.com/spec/v1") and len(body) < 1024:
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
            if new != ZERO:
                where.setdefault(new, (commit, path))
    return where
