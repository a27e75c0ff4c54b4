"""The small file git stores instead of a checkpoint: per-parameter tensor and LFS facts, as JSON.

The layout is stable, so the same tensors always give the same bytes (git sees no change after
a re-save), and the file stays readable in `git show`. Its first key is a notice saying what the
file is and how to get the checkpoint, for a clone made without git-theta.

Version 2 (written now) keeps it small in proportion to the tensor count, since git keeps every
version: one line per parameter, `[name, dtype, shape, sha256, where, how(, extra)]`, in file
order. `where` names an object of the `objects` map (oid -> size, each written once however many
small tensors share a pack) by the first 12 (or more, if ambiguous) digits of its oid, or is
`[prefix, offset, length]` for a slice of a pack; `how` names an entry of the `storage` map
(`[update type, codec]`). Names come from content, not positions, so a changed tensor is a
one-line diff (plus a line for a new object). 50,000 small tensors in a 27.8 MB torch.save
file: 29.6 MB in version 1 (a nested object per parameter), 9.4 MB in version 2 (0.34x the
checkpoint); changing 1% of them changes 501 lines. Version 1 files are still read, and are
rewritten only when a tensor changes (Metadata.dumps_unchanged).
"""

import json

from git_theta import dtypes
from git_theta.errors import ThetaError, shorten
from git_theta.jsontext import dumps_indent1
from git_theta.records import Record
from git_theta.tensor import numel

VERSION = 2
_READS = (1, 2)  # versions this code reads
# what each parameter row holds, written into the file for whoever reads it without this code
FIELDS = "name, dtype, shape, sha256 of the raw tensor, object (oid prefix) or [object, offset, length], storage, extra"
# First in the file (keys are sorted, "README" < "checkpoint"): what a clone without the filter
# shows where the checkpoint should be, and the fix, as a Git LFS pointer says what it is
NOTICE_KEY = "README"
NOTICE = (
    "This is git-theta metadata, not the checkpoint; to get the checkpoint run "
    "`git theta install`, then `git theta checkout-models`"
)
LFS_SPEC = "https://git-lfs.github.com/spec/v1"
# bytes: a larger file is never metadata. The one limit: clean and save refuse to write more, and
# prune and push (git.history) read every blob up to it and stop at a larger one that looks like it
MAX_METADATA = 512 << 20
_MAX_NAME = 1024  # characters in a parameter name
_MAX_NDIM = 32
_MAX_DEPTH = 400  # nesting: update chains (at most 64 steps, 2 levels each) and layout trees fit
_HEX = frozenset("0123456789abcdef")
_MAX_TENSOR_BYTES = 1 << 44  # 16 TiB: past any real tensor; refused before anything is allocated


class ParamEntry(Record):
    """One stored parameter: what the tensor is, where its bytes are, how they were stored."""

    _COMPARED = ("dtype", "shape", "hash", "oid", "size", "update_type", "codec", "extra")
    __slots__ = ("__dict__",)  # attributes as before: plug-ins may keep their own on an entry

    def __init__(
        self,
        dtype: str,
        shape: tuple[int, ...],
        hash: str,
        oid: str,
        size: int,
        update_type: str = "dense",
        codec: str = "",
        extra: dict | None = None,
    ) -> None:
        self.dtype = dtype
        self.shape = shape
        self.hash = hash  # sha256 of the tensor's raw little-endian bytes
        self.oid = oid  # LFS oid (sha256) of the stored object
        self.size = size  # LFS object size in bytes
        self.update_type = update_type
        self.codec = codec
        self.extra = {} if extra is None else extra  # update-specific facts (what it builds on, ...)

    def replace(self, **changes) -> "ParamEntry":
        """A copy with `changes` (as dataclasses.replace)."""
        return ParamEntry(**{**dict(zip(self._COMPARED, self._values())), **changes})

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
        if len(entry.oid) != 64 or not _HEX.issuperset(entry.oid):
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
    if len(name) > _MAX_NAME or (name and min(name) < " "):  # min(): the lowest code point, in C
        raise ThetaError(f"parameter name {shorten(name)} is too long or holds control characters")


class Metadata(Record):
    """A whole checkpoint: its format, the layout to rebuild it, and its parameters in file order."""

    _COMPARED = ("format", "layout", "params")
    __slots__ = ("__dict__",)

    def __init__(self, format: str, layout: dict, params: dict[str, ParamEntry], source: bytes = b"") -> None:
        self.format = format
        self.layout = layout
        self.params = params
        self.source = source  # the bytes it was read from: not compared, not shown

    def dumps_unchanged(self, previous: "list[Metadata]") -> bytes:
        """dumps(), or the very bytes of an equal previous version (whichever git-theta wrote
        it, with or without the notice), so re-adding the same tensors never changes the file."""
        for old in previous:
            if old.source and old == self and list(old.params) == list(self.params):
                return old.source
        return self.dumps()

    def dumps(self) -> bytes:
        """The version 2 text (see the module docstring); ThetaError past MAX_METADATA."""
        objects = {(e.oid, e.size) for e in self.params.values()}
        sizes = dict(sorted(objects))
        if len(sizes) < len(objects):
            raise ThetaError("two parameters give one LFS object different sizes")
        refs = _short_refs(list(sizes))
        kinds = {(e.update_type, e.codec) for e in self.params.values()}
        keys = _storage_keys(kinds)
        rows = []
        for name, e in self.params.items():
            where: str | list = refs[e.oid]
            extra = dict(e.extra)
            pack = extra.get("pack")
            if isinstance(pack, (list, tuple)) and len(pack) == 2 and all(type(x) is int for x in pack):
                del extra["pack"]
                where = [where, *pack]
            row = [name, e.dtype, list(e.shape), e.hash, where, keys[(e.update_type, e.codec)]]
            rows.append(_line(row + [extra] if extra else row))
        head = {
            "checkpoint": {"format": self.format, "layout": self.layout},
            "git_theta": {"metadata_version": VERSION, "parameters": FIELDS},
        }
        parts = [
            "{",
            f" {_line(NOTICE_KEY)}: {_line(NOTICE)},",
            *(f" {_line(k)}: {dumps_indent1(v).replace(chr(10), chr(10) + ' ')}," for k, v in head.items()),
            f' "objects": {_rows([f"{_line(oid)}:{size}" for oid, size in sizes.items()], "{}")},',
            f' "storage": {_rows([f"{_line(k)}:{_line(list(kind))}" for kind, k in sorted(keys.items(), key=lambda kv: kv[1])], "{}")},',
            f' "parameters": {_rows(rows, "[]")}',
            "}",
            "",
        ]
        return _within_limit("\n".join(parts).encode("utf-8"), len(self.params))

    @classmethod
    def loads(cls, data: bytes | bytearray | memoryview, path: str = "") -> "Metadata":
        """Parse and check a metadata file (version 1 or 2); ThetaError (one line) when it is malformed."""
        raw = bytes(data)
        try:
            doc = json.loads(raw)
            ck, params = doc["checkpoint"], doc["parameters"]
            version = doc["git_theta"]["metadata_version"]
            fmt, layout = ck["format"], ck["layout"]
            if not isinstance(fmt, str) or not isinstance(layout, dict):
                raise TypeError("format is not a string or layout not a map")
            if not isinstance(doc.get(NOTICE_KEY, ""), str):  # older metadata has none
                raise TypeError(f"{NOTICE_KEY} is not a string")
        except RecursionError:
            raise ThetaError("git-theta metadata is nested too deeply to be real", path) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ThetaError(f"git-theta metadata is malformed ({_detail(exc)})", path) from None
        from git_theta.formats.layout import check_bounded

        try:  # every later walk (layouts, update chains, diffs) may then recurse safely
            check_bounded(doc, path, depth=_MAX_DEPTH)
        except ThetaError:
            raise ThetaError("git-theta metadata is nested too deeply to be real", path) from None
        if type(version) is not int or version not in _READS:
            raise ThetaError(f"metadata version {shorten(version)} is not supported; upgrade git-theta", path)
        try:
            if version == 1:
                entries = _entries_v1(ck, params)
            else:
                entries = _entries_v2(doc, params)
        except ThetaError as exc:
            raise ThetaError(str(exc), path) from None
        return cls(fmt, layout, entries, raw)


def _line(value) -> str:
    """One JSON value on one line, keys sorted: a parameter row, a table entry."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _rows(lines: list[str], brackets: str) -> str:
    """A JSON list or map with one element per line."""
    return f"{brackets[0]}\n  " + ",\n  ".join(lines) + f"\n {brackets[1]}" if lines else brackets


_REF = 12  # hex digits of an oid that name it in a row, more where two objects share them


def _short_refs(oids: list[str]) -> dict[str, str]:
    """oid -> the shortest prefix of at least _REF digits no other oid here starts with. Rows
    name objects by these, not by a position in the table, so a new object changes no row."""
    groups: dict[str, list[str]] = {}
    for oid in oids:
        groups.setdefault(oid[:_REF], []).append(oid)
    refs = {}
    for group in groups.values():
        for oid in group:
            n = _REF
            while n < len(oid) and any(o != oid and o.startswith(oid[:n]) for o in group):
                n += 1
            refs[oid] = oid[:n]
    return refs


def _storage_keys(kinds: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(update type, codec) -> its name in rows: the update type, or "type codec" where one
    update type is stored with several codecs (names from content: a new kind renames no row)."""
    types = [t for t, _ in kinds]
    return {(t, c): t if types.count(t) == 1 else f"{t} {c}" for t, c in kinds}


def _detail(exc: Exception) -> str:
    detail = f"missing key {shorten(exc.args[0])}" if isinstance(exc, KeyError) else str(exc)
    return shorten(detail, 200)


def _entries_v1(ck: dict, params) -> dict[str, ParamEntry]:
    """Version 1: `order` lists the names, `parameters` maps each to a nested entry."""
    order = ck.get("order")
    if not isinstance(order, list) or not isinstance(params, dict):
        raise ThetaError("git-theta metadata is malformed (order is not a list or parameters not a map)")
    for name in order:
        check_name(name)
    if len(set(order)) != len(order) or set(order) != set(params):
        raise ThetaError("metadata parameter list does not match its order")
    return {name: ParamEntry.from_json(params[name], name) for name in order}


def _table(doc: dict, key: str, value_type: type) -> dict:
    """A version 2 table: a map from names to values of `value_type`."""
    table = doc.get(key)
    if not isinstance(table, dict) or not all(type(v) is value_type for v in table.values()):
        raise ThetaError(f"git-theta metadata is malformed ({key} is not a map of {value_type.__name__}s)")
    return table


def _entries_v2(doc: dict, params) -> dict[str, ParamEntry]:
    """Version 2: one row per parameter, naming its object (by an oid prefix) and how it is
    stored. Each row is turned back into a version 1 entry and checked by ParamEntry.from_json,
    so both versions meet the same checks."""
    sizes = _table(doc, "objects", int)
    storage = _table(doc, "storage", list)
    if not isinstance(params, list):
        raise ThetaError("git-theta metadata is malformed (parameters is not a list)")
    by_prefix: dict[int, dict[str, str | None]] = {}  # prefix length -> prefix -> oid (None: ambiguous)

    def resolve(ref) -> str | None:
        if not isinstance(ref, str) or not _REF <= len(ref) <= 64:
            return None
        if len(ref) not in by_prefix:
            found: dict[str, str | None] = {}
            for oid in sizes:
                found[oid[: len(ref)]] = None if oid[: len(ref)] in found else oid
            by_prefix[len(ref)] = found
        return by_prefix[len(ref)].get(ref)

    entries: dict[str, ParamEntry] = {}
    for row in params:
        if not isinstance(row, list) or len(row) not in (6, 7):
            raise ThetaError(f"git-theta metadata has a malformed parameter row {shorten(row)}")
        name, dtype, shape, digest, where, how = row[:6]
        extra = row[6] if len(row) == 7 else {}
        check_name(name)
        if name in entries:
            raise ThetaError(f"metadata lists parameter {shorten(name)} twice")
        what = f"metadata for parameter {shorten(name)}"
        theta = dict(extra) if isinstance(extra, dict) else None
        if isinstance(where, list) and len(where) == 3 and all(type(x) is int for x in where[1:]):
            where, offset, length = where
            if theta is not None:
                theta["pack"] = [offset, length]
        oid = resolve(where)
        kind = storage.get(how) if isinstance(how, str) else None
        if theta is None:
            raise ThetaError(f"{what} has a malformed row {shorten(row)}")
        if oid is None:
            raise ThetaError(f"{what} names no single object of the objects table ({shorten(where)})")
        if not (isinstance(kind, list) and len(kind) == 2 and all(isinstance(k, str) for k in kind)):
            raise ThetaError(f"{what} names no entry of the storage table ({shorten(how)})")
        theta.update(update_type=kind[0], codec=kind[1])
        entry = {
            "tensor_metadata": {"dtype": dtype, "shape": shape, "hash": digest},
            "lfs_metadata": {"oid": oid, "size": sizes[oid]},
            "theta_metadata": theta,
        }
        entries[name] = ParamEntry.from_json(entry, name)
    return entries


def _within_limit(data: bytes, count: int) -> bytes:
    """`data`, or a ThetaError: metadata past MAX_METADATA would not be read back as metadata."""
    if len(data) > MAX_METADATA:
        raise ThetaError(
            f"the metadata of {count} parameters would take {len(data) >> 20} MiB, past the "
            f"{MAX_METADATA >> 20} MiB git-theta reads back; split the checkpoint into several files"
        )
    return data


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
