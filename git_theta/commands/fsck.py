"""`git theta fsck [REV...]`: every object the models' metadata refers to exists, hashes right, decodes.

Objects missing locally are fetched (in one batch) unless --no-fetch; damage is reported per file
and commit, and the exit code is non-zero when anything is wrong.
"""

from dataclasses import dataclass

from git_theta.errors import ThetaError
from git_theta.git import history, repo
from git_theta.storage import transfer
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import load_entry


@dataclass
class Problem:
    commit: str
    path: str
    parameter: str
    oid: str
    what: str

    def __str__(self) -> str:
        where = self.commit[:10] if self.commit else "index"
        return f"{self.path} @ {where}: parameter {self.parameter!r} object {self.oid[:12]}: {self.what}"


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
    uses: dict[str, list[tuple[str, str, str, object]]] = {}  # oid -> [(commit, path, parameter, entry)]
    for sha, meta in history.metadata_in(list(where), top):
        commit, path = where[sha]
        for name, entry in meta.params.items():
            uses.setdefault(entry.oid, []).append((commit, path, name, entry))
    problems: list[Problem] = []
    missing = {oid: u[0][3].size for oid, u in uses.items() if not store.has(oid)}
    if missing and fetch:
        try:
            transfer.fetch(store, missing, top, what="fsck")
        except ThetaError:
            pass
    for oid, users in uses.items():
        commit, path, name, entry = users[0]
        if not store.has(oid):
            what = "missing locally and on the remote" if fetch else "missing locally"
            problems += [Problem(c, p, n, oid, what) for c, p, n, _ in users]
            continue
        try:
            load_entry(entry, store, name)
        except ThetaError as exc:
            problems += [Problem(c, p, n, oid, _short(exc)) for c, p, n, _ in users]
    return len(uses), problems


def _short(exc: ThetaError) -> str:
    text = str(exc)
    return "corrupt (checksum mismatch)" if "checksum mismatch" in text else text
