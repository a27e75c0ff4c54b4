"""What a change reuses: the stored pieces (LFS objects, pack slices) there were before it.

"Stored by this change" counts the pieces that the new side of a file references and that no
tracked checkpoint on the old side does (a re-shard moves tensors between files and stores
nothing), each once: under the first file, in path order, of the new side that references it.
"""

import os

from git_theta.errors import ThetaError
from git_theta.git import attributes, history, repo
from git_theta.metadata import Metadata, is_metadata


def tracked_blobs(rev: str | None, top: str) -> dict[str, str]:
    """path -> blob sha of every tracked checkpoint at commit `rev`, or in the index ("" or None)."""
    if rev:  # "<mode> <type> <sha>\t<path>"
        out, kind, sha, want = repo.run(["ls-tree", "-r", "-z", rev], cwd=top), 1, 2, "blob"
    else:  # "<mode> <sha> <stage>\t<path>": merged entries only
        out, kind, sha, want = repo.run(["ls-files", "-s", "-z"], cwd=top), 2, 1, "0"
    blobs = {}
    for row in out.split(b"\0"):
        info, _, path = row.partition(b"\t")
        parts = info.decode().split()
        if len(parts) == 3 and parts[kind] == want:
            blobs[path.decode()] = parts[sha]
    return {p: blobs[p] for p in attributes.tracked_paths(list(blobs), os.path.abspath(top))}


def pieces_by_path(blobs: dict[str, str], top: str) -> dict[str, set[str]]:
    """path -> the stored pieces its metadata references (files that are not metadata: none)."""
    metas: dict[str, Metadata] = {}
    for sha, body in history.read_blobs(sorted(set(blobs.values())), top):
        try:
            if is_metadata(body):
                metas[sha] = Metadata.loads(body)
        except ThetaError:
            continue  # a damaged file elsewhere does not stop this diff; fsck reports it
    return {
        path: {entry.stored_piece()[0] for entry in metas[sha].params.values()}
        for path, sha in blobs.items()
        if sha in metas
    }


class Baseline:
    """The pieces a change's old side has stored, and each new-side file's: what counts as new."""

    def __init__(self, old_rev: str | None, new_rev: str | None, top: str):
        """Revisions are commits, or "" / None for the index (a working tree side counts as its index)."""
        self.old: set[str] = set().union(*pieces_by_path(tracked_blobs(old_rev, top), top).values())
        self.new = pieces_by_path(tracked_blobs(new_rev, top), top)

    def known(self, path: str) -> set[str]:
        """Pieces stored before the new side of `path`: the old side's, and earlier new-side files'."""
        return self.old.union(*(pieces for other, pieces in self.new.items() if other < path))
