"""`git theta fsck [REV...]`: everything a checkout of the models would need is there and sound.

For every metadata file (default: all refs and the index): it parses, its format is installed
and its layout is one the format's writer accepts; every distinct entry (each slice of a pack,
each chain) has its objects (fetched in one batch unless --no-fetch), rebuilds, and hashes to
the content hash its metadata records. Damage is reported per file, commit and parameter, and
the exit code is non-zero when anything is wrong: fsck finds whatever checkout would fail on.
"""

from dataclasses import dataclass

from git_theta.errors import CorruptObjectError, ThetaError, shorten
from git_theta.formats.detect import by_name
from git_theta.git import history, repo
from git_theta.metadata import Metadata, is_metadata
from git_theta.storage import transfer, verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import TensorSpec
from git_theta.updates import load_entry, objects_of

_CRASHES = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    MemoryError,
    OverflowError,
)


@dataclass
class Problem:
    commit: str
    path: str
    parameter: str
    oid: str
    what: str

    def __str__(self) -> str:
        where = self.commit[:10] if self.commit else "index"
        if not self.parameter and not self.oid:
            return f"{self.path} @ {where}: {self.what}"
        return f"{self.path} @ {where}: parameter {self.parameter!r} object {self.oid[:12]}: {self.what}"


def _check_file(meta: Metadata, path: str) -> str | None:
    """Why a checkout could not write this file from its metadata (None: it could)."""
    try:
        fmt = by_name(meta.format)
        specs = [TensorSpec(n, e.dtype, tuple(e.shape)) for n, e in meta.params.items()]
        fmt.check_layout(meta.layout, specs, path)
    except ThetaError as exc:
        return str(exc)
    except _CRASHES as exc:
        return f"malformed layout ({shorten(str(exc), 120)})"
    return None


def fsck(revs: list[str], fetch: bool = True, cwd: str | None = None) -> tuple[int, list[Problem]]:
    """(objects checked, problems) for the models in `revs` (default: all refs) and the index."""
    top = repo.root(cwd)
    store = LfsStore.for_cwd(top)
    args = revs or ["--all"]
    where = history.metadata_by_commit(args, top) if repo.is_commit("HEAD", top) else {}
    index = {}
    for line in repo.run(["ls-files", "-s"], cwd=top).decode().splitlines():
        meta_part, _, path = line.partition("\t")
        index.setdefault(meta_part.split()[1], ("", path))
    if not revs:
        for sha, loc in index.items():
            where.setdefault(sha, loc)
    problems: list[Problem] = []
    # fingerprint of an entry -> (entry, its objects, [(commit, path, parameter)])
    entries: dict[str, tuple] = {}
    for sha, body in history.read_blobs(list(where), top):
        if body[:1] != b"{" or not is_metadata(body):
            continue
        commit, path = where[sha]
        try:
            meta = Metadata.loads(body, path)
        except ThetaError as exc:
            problems.append(Problem(commit, path, "", "", str(exc)))
            continue
        why = _check_file(meta, path)
        if why:
            problems.append(Problem(commit, path, "", "", why))
        for name, entry in meta.params.items():
            try:
                fp, needs = verified.fingerprint(entry), objects_of(entry, name)
            except ThetaError as exc:
                problems.append(Problem(commit, path, name, entry.oid, str(exc)))
                continue
            entries.setdefault(fp, (entry, needs, []))[2].append((commit, path, name))
    sizes = {oid: size for _, needs, _ in entries.values() for oid, size in needs.items()}
    missing = {oid: size for oid, size in sizes.items() if not store.has(oid)}
    if missing and fetch:
        try:
            transfer.fetch(store, missing, top, what="fsck")
        except ThetaError:
            pass
    sound = []
    for entry, needs, users in entries.values():
        absent = [oid for oid in needs if not store.has(oid)]
        if absent:
            what = "missing locally and on the remote" if fetch else "missing locally"
            problems += [Problem(c, p, n, absent[0], what) for c, p, n in users]
            continue
        try:
            load_entry(entry, store, users[0][2], verify=True)
            sound.append(entry)
        except ThetaError as exc:
            problems += [Problem(c, p, n, entry.oid, _short(exc)) for c, p, n in users]
        except _CRASHES as exc:
            what = f"stored data cannot be rebuilt ({type(exc).__name__}: {shorten(str(exc), 120)})"
            problems += [Problem(c, p, n, entry.oid, what) for c, p, n in users]
    verified.record(store, sound)
    return len(sizes), problems


def _short(exc: ThetaError) -> str:
    return "corrupt (checksum mismatch)" if isinstance(exc, CorruptObjectError) else str(exc)
