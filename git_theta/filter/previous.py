"""What a path held before: its metadata at HEAD and in the index, to reuse unchanged tensors."""

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
