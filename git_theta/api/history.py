"""`git_theta.log` and `git_theta.diff`: a model's history and changes as Python objects."""

import os
from dataclasses import dataclass, field

from git_theta.api.paths import repo_path
from git_theta.errors import ThetaError
from git_theta.git import repo as git_repo
from git_theta.metadata import Metadata, is_metadata
from git_theta.updates import objects_of


@dataclass
class ModelVersion:
    """One commit that changed the checkpoint."""

    sha: str
    author: str
    date: str  # ISO 8601
    message: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    stored_bytes: int = 0  # LFS objects this commit added for the checkpoint


def _meta(top: str, rev: str, rel: str) -> Metadata | None:
    blob = git_repo.read_blob(f"{rev}:{rel}", cwd=top)
    if blob is None or not is_metadata(blob):
        return None
    return Metadata.loads(blob, rel)


def log(path: str, rev: str = "HEAD", *, repo: str = ".", max_count: int | None = None) -> list[ModelVersion]:
    """Commits that changed `path`, newest first, each with what changed (metadata only: fast)."""
    top, rel = repo_path(path, repo)
    if not git_repo.is_commit(rev, cwd=top):
        raise ThetaError(f"unknown revision {rev!r}")
    args = ["log", "--format=%H%x00%an%x00%aI%x00%B%x01", rev]
    if max_count:
        args.append(f"--max-count={max_count}")
    out = git_repo.run([*args, "--", rel], cwd=top).decode("utf-8", "replace")
    versions = []
    for record in filter(None, (r.strip("\n") for r in out.split("\x01"))):
        sha, author, date, message = record.split("\x00", 3)
        new = _meta(top, sha, rel)
        old = _meta(top, f"{sha}^", rel) if git_repo.is_commit(f"{sha}^", cwd=top) else None
        v = ModelVersion(sha, author, date, message.strip())
        if new is not None:
            before = old.params if old else {}
            v.added = [n for n in new.params if n not in before]
            v.removed = [n for n in before if n not in new.params]
            v.modified = [n for n, e in new.params.items() if n in before and not e.same_tensor(before[n])]
            known = {o for e in before.values() for o in objects_of(e)}
            fresh = {}
            for n, e in new.params.items():
                fresh.update({o: s for o, s in objects_of(e, n).items() if o not in known})
            v.stored_bytes = sum(fresh.values())
        versions.append(v)
    return versions


def diff(rev_a: str, rev_b: str, path: str, *, repo: str = ".", numbers: bool = True):
    """Per-parameter changes of `path` from `rev_a` to `rev_b` (git_theta.diffs.compute.ModelDiff)."""
    from git_theta.diffs.compute import ModelDiff
    from git_theta.diffs.revisions import diff as run

    top, rel = repo_path(path, repo)
    found = run([rev_a, rev_b], [os.path.join(top, rel)], cwd=top, with_numbers=numbers)
    if found:
        return found[0]
    meta = _meta(top, rev_b, rel)  # identical on both sides
    n = len(meta.params) if meta else 0
    fmt = meta.format if meta else None
    return ModelDiff(rel, fmt, fmt, n, n, [], 0)
