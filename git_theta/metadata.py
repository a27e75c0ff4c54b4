"""The small file git stores instead of a checkpoint: per-parameter tensor and LFS facts, as JSON.

Keys are sorted and the layout is stable, so the same tensors always give the same bytes (git
sees no change after a re-save), and the file stays readable in `git show`.
"""

import json
from dataclasses import dataclass, field

from git_theta import dtypes
from git_theta.errors import ThetaError

VERSION = 1
LFS_SPEC = "https://git-lfs.github.com/spec/v1"
_MAX_METADATA = 512 << 20


@dataclass
class ParamEntry:
    """One stored parameter: what the tensor is, where its bytes are, how they were stored."""

    dtype: str
    shape: tuple[int, ...]
    hash: str  # sha256 of the tensor's raw little-endian bytes
    oid: str  # LFS oid (sha256) of the stored object
    size: int  # LFS object size in bytes
    update_type: str = "dense"
    codec: str = ""
    extra: dict = field(default_factory=dict)  # update-specific facts (what it builds on, ...)

    def same_tensor(self, other: "ParamEntry") -> bool:
        return (
            self.hash == other.hash and self.dtype == other.dtype and tuple(self.shape) == tuple(other.shape)
        )

    def stored_piece(self) -> tuple[str, int]:
        """(identity, bytes) of this entry's own stored data: its object, or its slice of a
        pack (storage.packs), so sizes shown and summed are per parameter."""
        where = self.extra.get("pack")
        if isinstance(where, list) and len(where) == 2:
            return f"{self.oid}@{where[0]}", int(where[1])
        return self.oid, self.size

    def to_json(self) -> dict:
        theta = {"update_type": self.update_type, "codec": self.codec, **self.extra}
        return {
            "tensor_metadata": {"dtype": self.dtype, "shape": list(self.shape), "hash": self.hash},
            "lfs_metadata": {"version": LFS_SPEC, "oid": self.oid, "size": self.size},
            "theta_metadata": theta,
        }

    @classmethod
    def from_json(cls, obj: dict, name: str) -> "ParamEntry":
        try:
            tm, lm, th = obj["tensor_metadata"], obj["lfs_metadata"], dict(obj["theta_metadata"])
            shape = tuple(int(s) for s in tm["shape"])
            entry = cls(
                dtype=str(tm["dtype"]),
                shape=shape,
                hash=str(tm["hash"]),
                oid=str(lm["oid"]),
                size=int(lm["size"]),
                update_type=str(th.pop("update_type")),
                codec=str(th.pop("codec", "")),
                extra=th,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ThetaError(
                f"metadata for parameter {name!r} is malformed ({type(exc).__name__}: {exc})"
            ) from None
        if entry.dtype not in dtypes.DTYPES:
            raise ThetaError(f"metadata for parameter {name!r} has unknown dtype {entry.dtype!r}")
        if len(entry.oid) != 64 or any(c not in "0123456789abcdef" for c in entry.oid):
            raise ThetaError(f"metadata for parameter {name!r} has a malformed LFS oid")
        if any(s < 0 for s in shape):
            raise ThetaError(f"metadata for parameter {name!r} has a negative dimension")
        return entry


@dataclass
class Metadata:
    """A whole checkpoint: its format, the layout to rebuild it, and its parameters in file order."""

    format: str
    layout: dict
    params: dict[str, ParamEntry]

    def dumps(self) -> bytes:
        doc = {
            "git_theta": {"metadata_version": VERSION},
            "checkpoint": {"format": self.format, "layout": self.layout, "order": list(self.params)},
            "parameters": {name: e.to_json() for name, e in self.params.items()},
        }
        return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def loads(cls, data: bytes | bytearray | memoryview, path: str = "") -> "Metadata":
        try:
            doc = json.loads(bytes(data))
            ck, params = doc["checkpoint"], doc["parameters"]
            version = doc["git_theta"]["metadata_version"]
            order = list(ck["order"])
            fmt, layout = str(ck["format"]), dict(ck["layout"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ThetaError(f"git-theta metadata is malformed ({type(exc).__name__}: {exc})", path) from None
        if version != VERSION:
            raise ThetaError(f"metadata version {version} is not supported; upgrade git-theta", path)
        if not isinstance(params, dict) or sorted(order) != sorted(params):
            raise ThetaError("metadata parameter list does not match its order", path)
        try:
            entries = {name: ParamEntry.from_json(params[name], name) for name in order}
        except ThetaError as exc:
            raise ThetaError(str(exc), path) from None
        return cls(fmt, layout, entries)


def is_metadata(data) -> bool:
    """True when `data` is a git-theta metadata file (cheap check first, then a parse)."""
    if len(data) == 0 or len(data) > _MAX_METADATA or bytes(data[:1]) != b"{":
        return False
    try:
        doc = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and "git_theta" in doc and "parameters" in doc
