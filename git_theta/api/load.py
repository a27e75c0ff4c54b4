"""`git_theta.load`: a state dict at any revision, straight from the object store."""

from collections.abc import Iterator, Mapping

from git_theta import parallel
from git_theta.api.frameworks import FRAMEWORKS, from_raw, unflatten
from git_theta.api.paths import repo_path
from git_theta.errors import ThetaError
from git_theta.git import repo
from git_theta.metadata import Metadata, is_metadata
from git_theta.storage import transfer
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import load_entry, objects_of


def metadata_at(top: str, rel: str, rev: str) -> Metadata:
    """The metadata of `rel` at `rev`, with clear errors."""
    if not repo.is_commit(rev, cwd=top):
        raise ThetaError(f"unknown revision {rev!r}")
    blob = repo.read_blob(f"{rev}:{rel}", cwd=top)
    if blob is None:
        raise ThetaError(f"{rel}: not in {rev}")
    if not is_metadata(blob):
        raise ThetaError(f"{rel}: not a checkpoint tracked by git-theta at {rev}")
    return Metadata.loads(blob, rel)


class LazyStateDict(Mapping):
    """Parameters loaded (and fetched if missing) on first access, then kept."""

    def __init__(self, meta: Metadata, names: list[str], store: LfsStore, top: str, framework: str, rel: str):
        self._meta, self._names, self._store = meta, names, store
        self._top, self._framework, self._rel = top, framework, rel
        self._cache: dict = {}

    def __getitem__(self, name: str):
        if name not in self._cache:
            if name not in self._names:
                raise KeyError(name)
            entry = self._meta.params[name]
            transfer.fetch(self._store, objects_of(entry, name), self._top, what=f"{self._rel}:{name}")
            self._cache[name] = from_raw(load_entry(entry, self._store, name), self._framework)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def load(
    path: str,
    rev: str = "HEAD",
    *,
    repo: str = ".",
    framework: str = "torch",
    lazy: bool = False,
    names: list[str] | None = None,
    nested: bool = False,
):
    """The tensors of `path` at `rev` as a dict (flat names; `nested=True` splits them at '/').

    `names` loads only those parameters; `lazy=True` returns a mapping that reads each parameter
    on first access. Missing objects are fetched from the LFS remote in one batch.
    """
    if framework not in FRAMEWORKS:
        raise ThetaError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}")
    top, rel = repo_path(path, repo)
    meta = metadata_at(top, rel, rev)
    selected = list(meta.params) if names is None else list(names)
    unknown = [n for n in selected if n not in meta.params]
    if unknown:
        raise ThetaError(f"{rel} at {rev} has no parameter(s) {', '.join(unknown[:8])}")
    store = LfsStore.for_cwd(top)
    if lazy:
        if nested:
            raise ThetaError("lazy=True returns flat names; nested=True needs lazy=False")
        return LazyStateDict(meta, selected, store, top, framework, rel)
    needed: dict[str, int] = {}
    for n in selected:
        needed.update(objects_of(meta.params[n], n))
    transfer.fetch(store, needed, top, what=rel)
    values = parallel.ordered_map(
        lambda n: from_raw(load_entry(meta.params[n], store, n), framework), selected
    )
    out = dict(zip(selected, values))
    return unflatten(out) if nested else out
