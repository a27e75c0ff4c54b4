"""`git theta pre-push REMOTE URL` (run by the hook): upload the LFS objects of pushed models."""

import subprocess

from git_theta.git import repo
from git_theta.log import get_logger
from git_theta.metadata import Metadata, is_metadata
from git_theta.storage import transfer
from git_theta.storage.lfs_store import LfsStore

log = get_logger(__name__)
ZERO = "0" * 40
_MAX_METADATA_BLOB = 256 << 20


def _new_blobs(local_shas: list[str], remote: str, remote_shas: list[str], cwd: str) -> list[str]:
    """Blobs reachable from the pushed commits but not from what the remote already has."""
    exclude = [
        f"^{sha}"
        for sha in remote_shas
        if sha != ZERO and repo.run(["cat-file", "-t", sha], cwd=cwd, check=False)
    ]
    out = repo.run(["rev-list", "--objects", *local_shas, *exclude, "--not", f"--remotes={remote}"], cwd=cwd)
    shas = [line.split(" ", 1)[0] for line in out.decode().splitlines() if " " in line]
    if not shas:
        return []
    check = repo.run(["cat-file", "--batch-check"], cwd=cwd, input="\n".join(shas).encode() + b"\n")
    blobs = []
    for line in check.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and int(parts[2]) < _MAX_METADATA_BLOB:
            blobs.append(parts[0])
    return blobs


def _objects_of(blobs: list[str], cwd: str) -> dict[str, int]:
    """oid -> size of every LFS object that the metadata blobs among `blobs` reference."""
    from git_theta import plugins

    found: dict[str, int] = {}
    if not blobs:
        return found
    proc = subprocess.Popen(
        ["git", "cat-file", "--batch"], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    data, _ = proc.communicate("\n".join(blobs).encode() + b"\n")
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        header = data[pos:nl].split()
        size = int(header[2])
        body = data[nl + 1 : nl + 1 + size]
        pos = nl + 1 + size + 1
        if body[:1] != b"{" or not is_metadata(body):
            continue
        meta = Metadata.loads(body)
        for entry in meta.params.values():
            found.update(plugins.updates.get(entry.update_type)().objects(entry))
    return found


def pre_push(remote: str, url: str, lines: list[str], cwd: str | None = None) -> int:
    """Push the objects referenced by models in the pushed commits (git-lfs skips known ones)."""
    top = repo.root(cwd)
    updates = [line.split() for line in lines if line.strip()]
    local = [u[1] for u in updates if len(u) == 4 and u[1] != ZERO]
    if not local:
        return 0
    remote_shas = [u[3] for u in updates if len(u) == 4]
    objects = _objects_of(_new_blobs(local, remote, remote_shas, top), top)
    store = LfsStore.for_cwd(top)
    present = sorted(oid for oid in objects if store.has(oid))
    if len(present) < len(objects):
        log.info(
            "%d referenced objects are not local; assuming the remote has them", len(objects) - len(present)
        )
    if present:
        transfer.push(remote if remote else url, present, top)
    return 0
