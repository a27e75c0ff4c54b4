"""What a path held before: its metadata at HEAD and in the index, to reuse unchanged tensors."""

import os

from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.logs import get_logger
from git_theta.metadata import Metadata, ParamEntry, is_metadata

log = get_logger(__name__)


def previous_metadata(
    path: str, cwd: str | None = None, revs: tuple[str, ...] = ("HEAD", "")
) -> list[Metadata]:
    """The metadata of `path` at each rev that has it ("" is the index); unreadable ones skipped."""
    found = []
    for rev in revs:
        blob = repo.read_blob(f"{rev}:{path}", cwd=cwd)
        if blob is None or not is_metadata(blob):
            continue
        try:
            found.append(Metadata.loads(blob, path))
        except ThetaError as exc:
            log.warning("ignoring unreadable metadata of %s at %s: %s", path, rev or "the index", exc)
    return found


def by_content(metas: list[Metadata]) -> dict[tuple, ParamEntry]:
    """(hash, dtype, shape) -> an entry storing exactly that tensor."""
    out: dict[tuple, ParamEntry] = {}
    for meta in metas:
        for entry in meta.params.values():
            out.setdefault((entry.hash, entry.dtype, tuple(entry.shape)), entry)
    return out


_repo_known: dict[tuple, dict[tuple, ParamEntry]] = {}


def tracked_content(cwd: str | None = None) -> dict[tuple, ParamEntry]:
    """(hash, dtype, shape) -> entry over every tracked checkpoint at HEAD and in the index, so
    a tensor that moved to another file (a resharded checkpoint) is not stored again. Computed
    once per process and state of HEAD and index (a filter process serves many shards)."""
    from git_theta.git.tracking import tracked_files

    top = repo.root(cwd)
    head = repo.run(["rev-parse", "-q", "--verify", "HEAD"], cwd=top, check=False).decode().strip()
    try:
        index_stamp = os.stat(repo.git_path("index", top)).st_mtime_ns
    except OSError:
        index_stamp = 0
    key = (top, head, index_stamp)
    if key not in _repo_known:
        metas = []
        for rev in (head, None) if head else (None,):
            for path in tracked_files(top, rev):
                metas += previous_metadata(path, top, (rev,) if rev else ("",))
        _repo_known.clear()
        _repo_known[key] = by_content(metas)
    return _repo_known[key]
