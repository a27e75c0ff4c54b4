"""The small file git stores instead of a checkpoint: per-parameter tensor and LFS facts, as JSON.

Keys are sorted and the layout is stable, so the same tensors always give the same bytes (git
sees no change after a re-save), and the file stays readable in `git show`. Its first key is a
notice saying what the file is and how to get the checkpoint, for a clone made without git-theta.
"""

import json
from dataclasses import dataclass, field

from git_theta import dtypes
from git_theta.errors import ThetaError, shorten
from git_theta.jsontext import dumps_indent1
from git_theta.tensor import numel

VERSION = 1
# First in the file (keys are sorted, "README" < "checkpoint"): what a clone without the filter
# shows where the checkpoint should be, and the fix, as a Git LFS pointer says what it is
NOTICE_KEY = "README"
NOTICE = (
    "This is git-theta metadata, not the checkpoint; to get the checkpoint run "
    "`git theta install`, then `git theta checkout-models`"
)
LFS_SPEC = "https://git-lfs.github.com/spec/v1"
MAX_METADATA = 512 << 20  # bytes: a larger file is never metadata
_MAX_NAME = 1024  # characters in a parameter name
_MAX_NDIM = 32
_MAX_DEPTH = 400  # nesting: update chains (at most 64 steps, 2 levels each) and layout trees fit
_MAX_TENSOR_BYTES = 1 << 44  # 16 TiB: past any real tensor; refused before anything is allocated


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

    @property
    def nbytes(self) -> int:
        """Size of the tensor itself (raw bytes), not of what is stored."""
        return numel(self.shape) * dtypes.get(self.dtype).itemsize

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
        """Parse and check one parameter's entry; ThetaError (one line) when it is malformed."""
        where = f"metadata for parameter {shorten(name)}"
        try:
            tm, lm, th = obj["tensor_metadata"], obj["lfs_metadata"], dict(obj["theta_metadata"])
            if not isinstance(tm["shape"], list) or not all(type(s) is int for s in tm["shape"]):
                raise TypeError(f"shape {shorten(tm['shape'])} is not a list of integers")
            shape = tuple(tm["shape"])
            for key, value in (("dtype", tm["dtype"]), ("hash", tm["hash"]), ("oid", lm["oid"])):
                if not isinstance(value, str):
                    raise TypeError(f"{key} {shorten(value)} is not a string")
            if type(lm["size"]) is not int or not isinstance(th.get("update_type"), str):
                raise TypeError("size or update_type has the wrong type")
            entry = cls(
                dtype=tm["dtype"],
                shape=shape,
                hash=tm["hash"],
                oid=lm["oid"],
                size=lm["size"],
                update_type=th.pop("update_type"),
                codec=str(th.pop("codec", "")),
                extra=th,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing key {shorten(exc.args[0])}" if isinstance(exc, KeyError) else str(exc)
            raise ThetaError(
                f"{where} is malformed ({detail}); restore the file from a good commit"
            ) from None
        if entry.dtype not in dtypes.DTYPES:
            raise ThetaError(f"{where} has unknown dtype {shorten(entry.dtype)}")
        if len(entry.oid) != 64 or any(c not in "0123456789abcdef" for c in entry.oid):
            raise ThetaError(f"{where} has a malformed LFS oid")
        if any(s < 0 for s in shape) or entry.size < 0:
            raise ThetaError(f"{where} has a negative dimension or size")
        if len(shape) > _MAX_NDIM or entry.nbytes > _MAX_TENSOR_BYTES:
            raise ThetaError(f"{where} has an absurd shape {shorten(list(shape))}")
        pack = entry.extra.get("pack")  # storage.packs: [offset, length] of its slice
        if pack is not None and not (
            isinstance(pack, list) and len(pack) == 2 and all(type(x) is int and x >= 0 for x in pack)
        ):
            raise ThetaError(f"{where} has a malformed pack slice {shorten(pack)}")
        return entry


def check_name(name) -> None:
    """Parameter names come from files we did not write: bounded, printable strings."""
    if not isinstance(name, str):
        raise ThetaError(f"parameter name {shorten(name)} is not a string")
    if len(name) > _MAX_NAME or any(ord(c) < 32 for c in name):
        raise ThetaError(f"parameter name {shorten(name)} is too long or holds control characters")


@dataclass
class Metadata:
    """A whole checkpoint: its format, the layout to rebuild it, and its parameters in file order."""

    format: str
    layout: dict
    params: dict[str, ParamEntry]
    source: bytes = field(default=b"", compare=False, repr=False)  # the bytes it was read from

    def dumps_unchanged(self, previous: "list[Metadata]") -> bytes:
        """dumps(), or the very bytes of an equal previous version (whichever git-theta wrote
        it, with or without the notice), so re-adding the same tensors never changes the file."""
        for old in previous:
            if old.source and old == self and list(old.params) == list(self.params):
                return old.source
        return self.dumps()

    def dumps(self) -> bytes:
        doc = {
            NOTICE_KEY: NOTICE,
            "git_theta": {"metadata_version": VERSION},
            "checkpoint": {"format": self.format, "layout": self.layout, "order": list(self.params)},
            "parameters": {name: e.to_json() for name, e in self.params.items()},
        }
        return (dumps_indent1(doc) + "\n").encode("utf-8")

    @classmethod
    def loads(cls, data: bytes | bytearray | memoryview, path: str = "") -> "Metadata":
        """Parse and check a metadata file; ThetaError (one line) when it is malformed."""
        raw = bytes(data)
        try:
            doc = json.loads(raw)
            ck, params = doc["checkpoint"], doc["parameters"]
            version = doc["git_theta"]["metadata_version"]
            order, fmt, layout = ck["order"], ck["format"], ck["layout"]
            if not isinstance(order, list) or not isinstance(params, dict):
                raise TypeError("order is not a list or parameters not a map")
            if not isinstance(fmt, str) or not isinstance(layout, dict):
                raise TypeError("format is not a string or layout not a map")
            if not isinstance(doc.get(NOTICE_KEY, ""), str):  # older metadata has none
                raise TypeError(f"{NOTICE_KEY} is not a string")
        except RecursionError:
            raise ThetaError("git-theta metadata is nested too deeply to be real", path) from None
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"missing key {shorten(exc.args[0])}" if isinstance(exc, KeyError) else str(exc)
            raise ThetaError(f"git-theta metadata is malformed ({shorten(detail, 200)})", path) from None
        from git_theta.formats.layout import check_bounded

        try:  # every later walk (layouts, update chains, diffs) may then recurse safely
            check_bounded(doc, path, depth=_MAX_DEPTH)
        except ThetaError:
            raise ThetaError("git-theta metadata is nested too deeply to be real", path) from None
        if version != VERSION:
            raise ThetaError(f"metadata version {shorten(version)} is not supported; upgrade git-theta", path)
        try:
            for name in order:
                check_name(name)
            if len(set(order)) != len(order) or set(order) != set(params):
                raise ThetaError("metadata parameter list does not match its order")
            entries = {name: ParamEntry.from_json(params[name], name) for name in order}
        except ThetaError as exc:
            raise ThetaError(str(exc), path) from None
        return cls(fmt, layout, entries, raw)


def is_metadata(data) -> bool:
    """True when `data` is a git-theta metadata file (cheap check first, then a parse)."""
    if len(data) == 0 or len(data) > MAX_METADATA or bytes(data[:1]) != b"{":
        return False
    try:
        doc = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        return False
    except RecursionError:  # nested past any real file: metadata if it says so (loads refuses it)
        raw = bytes(data)
        return b'"git_theta"' in raw and b'"parameters"' in raw
    return isinstance(doc, dict) and "git_theta" in doc and "parameters" in doc
