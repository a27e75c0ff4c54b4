"""Where merge inputs come from: tracked checkpoints at a commit (REV:PATH), or plain files."""

import mmap
import os

import torch

from git_theta.errors import ThetaError
from git_theta.formats.detect import detect
from git_theta.formats.siblings import beside
from git_theta.git import repo
from git_theta.metadata import Metadata, ParamEntry, is_metadata
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import load_entry

_TORCH = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}  # fmt: skip


def torch_dtype(name: str) -> torch.dtype:
    return _TORCH.get(name) or getattr(torch, name)


def to_torch(t: RawTensor, device: str, compute: torch.dtype | None = None) -> torch.Tensor:
    """A writable tensor on `device`, converted to `compute` (a float type) when given."""
    dt = torch_dtype(t.dtype)
    if t.nbytes == 0:
        out = torch.empty(t.shape, dtype=dt)
    else:
        out = torch.frombuffer(bytearray(t.data) if t.data.readonly else t.data, dtype=dt).reshape(t.shape)
    return out.to(device=device, dtype=compute or dt)


def from_torch(x: torch.Tensor, dtype: str) -> RawTensor:
    """A merged tensor back to raw bytes in the parameter's dtype."""
    x = x.to(device="cpu", dtype=torch_dtype(dtype)).contiguous()
    if not x.numel():
        return RawTensor(dtype, tuple(x.shape), memoryview(b""))
    data = x.reshape(-1).view(torch.uint8).numpy()  # shares x's memory: no copy of a large result
    return RawTensor(dtype, tuple(x.shape), memoryview(data))


def split_spec(spec: str, top: str) -> tuple[str, str]:
    """'REV:PATH' or 'PATH' (at HEAD) -> (rev, repository-relative path)."""
    rev, sep, path = spec.partition(":")
    if not sep or not rev or not repo.is_commit(rev, cwd=top):
        rev, path = "HEAD", spec
    if os.path.isabs(path) or os.path.exists(path):
        path = os.path.relpath(os.path.abspath(path), top)
    return rev, path.replace(os.sep, "/")


class GitModel:
    """A checkpoint as git-theta stored it at a commit; tensors come from the object store."""

    def __init__(self, spec: str, top: str, store: LfsStore):
        self.spec, self.top, self.store = spec, top, store
        self.rev, self.path = split_spec(spec, top)
        blob = repo.read_blob(f"{self.rev}:{self.path}", cwd=top)
        if blob is None:
            raise ThetaError(f"{spec}: no such file at {self.rev} (give a tracked checkpoint or REV:PATH)")
        if not is_metadata(blob):
            raise ThetaError(
                f"{spec}: not tracked by git-theta at {self.rev} (run `git theta track` and commit it)"
            )
        self.meta = Metadata.loads(blob, spec)

    @property
    def names(self) -> list[str]:
        return list(self.meta.params)

    def entry(self, name: str) -> ParamEntry:
        return self.meta.params[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.meta.params[name].shape)

    def load(self, name: str) -> RawTensor:
        return load_entry(self.meta.params[name], self.store, name)

    def ensure_objects(self) -> None:
        from git_theta.prefetch import ensure_objects

        ensure_objects(self.meta, self.store, self.top, self.spec)


class FileTensors:
    """A checkpoint file on disk in any supported format (aux data: Fisher, Gram matrices)."""

    def __init__(self, path: str):
        self.spec = path
        try:
            with open(path, "rb") as f:
                self._map = (
                    mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.path.getsize(path) else b""
                )
        except OSError as exc:
            raise ThetaError(f"cannot read aux data ({exc.strerror})", path) from None
        view = memoryview(self._map)
        checkpoint = detect(path, bytes(view[:64]), beside(path)).read(view, path)
        self.tensors, self.layout = dict(checkpoint.tensors), checkpoint.layout

    @property
    def names(self) -> list[str]:
        return list(self.tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def load(self, name: str) -> RawTensor:
        return self.tensors[name]

    def ensure_objects(self) -> None:
        pass


def open_aux(spec: str, top: str, store: LfsStore):
    """Aux data from a plain file, or from a tracked checkpoint (REV:PATH or a path at HEAD)."""
    if os.path.isfile(spec):
        with open(spec, "rb") as f:
            head = f.read(1)
        if head != b"{":  # not git-theta metadata: the file itself
            return FileTensors(spec)
    return GitModel(spec, top, store)
