"""Change types: an entry stores a change (named parts) and the entry it applies to.

The parts (small tensors) are packed into one LFS object: a msgpack map of part name to
{dtype, shape, data (the codec's bytes)}. The base entry travels inside the metadata
(`theta_metadata.base`), so rebuilding needs no history walk; see updates.chain.
"""

import io
from abc import abstractmethod

import msgpack

from git_theta import codec, dtypes, plugins
from git_theta.errors import ThetaError
from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor, numel
from git_theta.updates import chain, policy
from git_theta.updates.base import Update, UpdateContext
from git_theta.updates.dense import write_object
from git_theta.updates.hashing import tensor_hash

log = get_logger(__name__)
MAGIC = b"GTPARTS1"  # header first (written by earlier versions; still read)
TAIL_MAGIC = b"GTPARTS2"  # payloads first, then the header: streamed without buffering


class _Counting:
    """Counts the bytes written through it (where each part's payload starts and ends)."""

    def __init__(self, sink):
        self.sink, self.n = sink, 0

    def write(self, data) -> int:
        n = self.sink.write(data)
        self.n += len(memoryview(data).cast("B"))
        return n


def pack_parts(
    parts: dict[str, RawTensor], compressor: dict | None = None, skip_zero: bool = False, sink=None
) -> bytes | None:
    """The stored form of a change: each part's codec bytes back to back, then a msgpack header
    {part: [dtype, shape, offset, length]}, its length (u32 LE) and TAIL_MAGIC. Parts are
    encoded straight into `sink` (or into bytes returned when no sink is given)."""
    out = sink if sink is not None else io.BytesIO()
    counter = _Counting(out)
    header = {}
    for part_name, part in parts.items():
        start = counter.n
        codec.encode(part, counter, compressor, skip_zero)
        header[part_name] = [part.dtype, list(part.shape), start, counter.n - start]
    head = msgpack.packb(header, use_bin_type=True)
    out.write(head)
    out.write(len(head).to_bytes(4, "little"))
    out.write(TAIL_MAGIC)
    return None if sink is not None else out.getvalue()


def _check_sizes(claims, name: str, budget: int | None) -> None:
    """Before any part is decoded: dtypes known, shapes sane, and (with `budget`) all parts
    together no larger than a change of this parameter can be."""
    total = 0
    for dtype, shape in claims:
        if str(dtype) not in dtypes.DTYPES or not isinstance(shape, (list, tuple)) or len(shape) > 32:
            raise ValueError("a part has a malformed dtype or shape")
        if not all(type(s) is int and s >= 0 for s in shape):
            raise ValueError("a part has a malformed shape")
        total += numel(shape) * dtypes.get(str(dtype)).itemsize
    if budget is not None and total > budget:
        raise ThetaError(
            f"stored update of parameter {name!r} claims {total} bytes of parts, more than a change of it "
            "can need; restore the file from a good commit"
        )


def _decode_parts(
    view: memoryview, header, start: int, limit: int, name: str, budget: int | None = None
) -> dict[str, RawTensor]:
    if not isinstance(header, dict) or not all(isinstance(v, list) and len(v) == 4 for v in header.values()):
        raise TypeError("not a map of parts")
    _check_sizes([(v[0], v[1]) for v in header.values()], name, budget)
    out = {}
    for k, (dtype, shape, off, length) in header.items():
        if off < 0 or length < 0 or start + off + length > limit:
            raise ValueError(f"part {k} runs past its end")
        data = view[start + off : start + off + length]
        out[str(k)] = codec.decode(data, str(dtype), tuple(int(x) for x in shape), f"{name!r} {k}")
    return out


def unpack_parts(blob, name: str, budget: int | None = None) -> dict[str, RawTensor]:
    """Inverse of pack_parts (and of the first layout: one msgpack map holding the bytes);
    with `budget`, parts claiming more bytes in all are refused before any is decoded."""
    view = memoryview(blob)
    try:
        if len(view) >= 12 and bytes(view[-len(TAIL_MAGIC) :]) == TAIL_MAGIC:
            n = int.from_bytes(view[-12:-8], "little")
            head_start = len(view) - 12 - n
            if head_start < 0:
                raise ValueError("header length past the start")
            header = msgpack.unpackb(view[head_start : len(view) - 12], raw=False)
            return _decode_parts(view, header, 0, head_start, name, budget)
        if bytes(view[: len(MAGIC)]) == MAGIC:
            n = int.from_bytes(view[len(MAGIC) : len(MAGIC) + 4], "little")
            start = len(MAGIC) + 4 + n
            header = msgpack.unpackb(view[len(MAGIC) + 4 : start], raw=False)
            return _decode_parts(view, header, start, len(view), name, budget)
        packed = msgpack.unpackb(view, raw=False)
        if not isinstance(packed, dict) or not all(isinstance(v, dict) for v in packed.values()):
            raise TypeError("not a map of parts")
        _check_sizes([(v["dtype"], v["shape"]) for v in packed.values()], name, budget)
        return {
            str(k): codec.decode(
                v["data"], str(v["dtype"]), tuple(int(s) for s in v["shape"]), f"{name!r} {k}"
            )
            for k, v in packed.items()
        }
    except ThetaError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, RecursionError, msgpack.exceptions.ExtraData) as exc:
        raise ThetaError(f"stored update of parameter {name!r} is corrupt ({exc})") from None


class DeltaUpdate(Update):
    """Base class of update types that store a change relative to an earlier value."""

    part_compressor: dict | None = None  # codec default unless a type's parts compress better otherwise
    skip_zero_parts: bool = False

    @abstractmethod
    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        """The change from `old` to `new` as named tensors, or None when this type cannot express it."""

    @abstractmethod
    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> RawTensor:
        """Rebuild the value `entry` describes from the value it builds on and its stored parts."""

    def check_side(self, parts: dict[str, RawTensor], dtype: str, shape: tuple[int, ...]) -> str | None:
        """Why side-loaded `parts` cannot update a parameter of this dtype/shape (None: they can)."""
        return None

    def check_apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> None:
        """Before `apply` computes anything: the stored parts and the value they build on can
        give the tensor the entry claims (a crafted entry is refused, not computed); for types
        that keep the shape (all but bitdelta), the base has the entry's dtype and size."""
        if old.dtype != entry.dtype or numel(old.shape) != numel(entry.shape):
            raise ThetaError(
                f"stored {self.name} update of parameter {name!r} builds on {old.dtype}{list(old.shape)}, "
                f"not on {entry.dtype}{list(entry.shape)}; restore the file from a good commit"
            )
        missing = [p for p in self.needed_parts(parts) if p not in parts]
        why = f"it lacks part {missing[0]!r}" if missing else self.check_side(parts, entry.dtype, entry.shape)
        if why:
            raise ThetaError(f"stored {self.name} update of parameter {name!r} is malformed ({why})")

    def needed_parts(self, parts: dict[str, RawTensor]) -> tuple[str, ...]:
        """The parts `apply` reads, given which are there (several layouts may exist)."""
        return self.side_parts

    def base_for(self, previous: ParamEntry, ctx: UpdateContext) -> tuple[ParamEntry, RawTensor]:
        """The entry this change builds on and its value (the previous one by default)."""
        return previous, ctx.previous_values()[0]

    def can_chain(self, base: ParamEntry, tensor: RawTensor) -> bool:
        """A change on `base` stays within GIT_THETA_MAX_CHAIN stored steps and fits its dtype."""
        return base.dtype == tensor.dtype and chain.depth(base) + 2 <= chain.max_chain()

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        fallback = plugins.updates.get("auto")()
        if not ctx.previous_usable():
            return fallback.store(tensor, ctx)
        base, old = self.base_for(ctx.previous, ctx)
        if not self.can_chain(base, tensor):
            return fallback.store(tensor, ctx)
        change = ctx.side if ctx.side is not None else self.parts(tensor, old)
        if change is None:
            return fallback.store(tensor, ctx)
        blob = pack_parts(change, self.part_compressor, self.skip_zero_parts)
        if ctx.side is None and self.exact and len(blob) >= tensor.nbytes:
            return fallback.store(tensor, ctx)  # not worth it: the smallest exact encoding instead
        if len(blob) > policy.room(base, tensor.nbytes, ctx.name) and (self.exact or ctx.side is not None):
            # a clone of this version would fetch more than the tensor's raw size: the new value
            # (exactly what this change rebuilds) is stored as the policy allows instead
            log.info("%s: %s change past the storage policy's bound; stored by auto", ctx.name, self.name)
            return fallback.store(tensor, ctx)
        entry = self.store_blob(tensor, blob, base, ctx.store)
        if ctx.side is None and not self.exact:
            entry.hash = tensor_hash(self.apply(old, change, entry, ctx.name))
        return entry

    def store_blob(self, tensor: RawTensor, blob, base: ParamEntry, store: LfsStore) -> ParamEntry:
        """Write packed parts (bytes, or a callable writing them to a sink); the entry applying them to `base`."""
        oid, size = write_object(store, blob)
        codec_name = codec.name_of(self.part_compressor)
        extra = {"base": base.to_json()}
        return ParamEntry(tensor.dtype, tensor.shape, "", oid, size, self.name, codec_name, extra)

    def read_parts(self, entry: ParamEntry, store: LfsStore, name: str) -> dict[str, RawTensor]:
        """Read and decode this step's stored parts."""
        budget = numel(entry.shape) * (dtypes.get(entry.dtype).itemsize + 8) + (1 << 20)
        return unpack_parts(store.read_entry(entry, what=f"parameter {name!r}"), name, budget)
