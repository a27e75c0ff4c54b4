"""One side of a model diff: stored metadata (tensors from the LFS store), a checkpoint file, or nothing."""

from dataclasses import dataclass

from git_theta.errors import ThetaError
from git_theta.formats.detect import detect, encoded_tensors
from git_theta.formats.siblings import beside
from git_theta.metadata import Metadata, is_metadata
from git_theta.prefetch import ensure_objects
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry
from git_theta.updates.hashing import tensor_hash


@dataclass(frozen=True)
class ParamInfo:
    """What is known of a parameter without reading its values."""

    dtype: str
    shape: tuple[int, ...]
    hash: str
    update_type: str | None = None  # None for a working-tree file: not stored yet
    oid: str | None = None
    size: int = 0  # bytes stored for it
    encoded: str | None = None  # quantized blocks: their type and logical shape, e.g. "Q4_K[64, 256]"

    @property
    def shown(self) -> str:
        """Type and shape as diffs show them: the encoding's for quantized blocks."""
        return self.encoded or f"{self.dtype}[{', '.join(str(s) for s in self.shape)}]"


WORKING_TREE = "working tree"
PLAIN_BLOB = "plain git blob"  # committed without the filter: stored by git, not git-theta


class ModelSide:
    """A model version: parameter facts up front, tensor values on demand."""

    unstored: str | None = None  # what a side not stored by git-theta is, for labels

    def __init__(self, path: str, params: dict[str, ParamInfo], fmt: str | None):
        self.path, self.params, self.format = path, params, fmt

    def load(self, name: str) -> RawTensor:
        raise ThetaError(f"{self.path}: no tensor {name!r} on this side")

    def prefetch(self, names: list[str]) -> None:
        """Make the named tensors loadable in one batch (fetch missing LFS objects)."""


class MissingSide(ModelSide):
    """The file does not exist on this side (added or deleted)."""

    def __init__(self, path: str):
        super().__init__(path, {}, None)


class StoredSide(ModelSide):
    """Metadata from git; tensors are decoded from the LFS store (fetched if missing)."""

    def __init__(self, path: str, meta: Metadata, store: LfsStore, cwd: str | None = None):
        encoded = encoded_tensors(meta.format, meta.layout)
        params = {
            n: ParamInfo(e.dtype, tuple(e.shape), e.hash, e.update_type, *e.stored_piece(), encoded.get(n))
            for n, e in meta.params.items()
        }
        super().__init__(path, params, meta.format)
        self.meta, self.store, self.cwd = meta, store, cwd

    def prefetch(self, names: list[str]) -> None:
        sub = Metadata(self.meta.format, self.meta.layout, {n: self.meta.params[n] for n in names})
        ensure_objects(sub, self.store, self.cwd, self.path)

    def load(self, name: str) -> RawTensor:
        entry = self.meta.params[name]
        return load_entry(entry, self.store, name)


class FileSide(ModelSide):
    """A checkpoint file (the working tree, or a plain git blob): parsed in memory, tensors hashed."""

    def __init__(self, path: str, data, where: str = WORKING_TREE):
        fmt = detect(path, bytes(data[:64]), beside(path))
        checkpoint = fmt.read(memoryview(data), path)
        encoded = fmt.encoded_tensors(checkpoint.layout)
        params = {
            n: ParamInfo(t.dtype, tuple(t.shape), tensor_hash(t), encoded=encoded.get(n))
            for n, t in checkpoint.tensors.items()
        }
        super().__init__(path, params, fmt.name)
        self.tensors, self.unstored = checkpoint.tensors, where

    def load(self, name: str) -> RawTensor:
        return self.tensors[name]


def side_from_bytes(
    path: str, data, store: LfsStore | None, cwd: str | None = None, where: str = WORKING_TREE
) -> ModelSide:
    """The right kind of side for some content: metadata, a checkpoint (from `where`), or empty (missing)."""
    if data is None or len(data) == 0:
        return MissingSide(path)
    if is_metadata(data):
        return StoredSide(path, Metadata.loads(data, path), store or LfsStore.for_cwd(cwd), cwd)
    return FileSide(path, data, where)
