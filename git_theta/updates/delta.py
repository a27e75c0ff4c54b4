"""Change types: an entry stores a change (named parts) and the entry it applies to.

The parts (small tensors) are packed into one LFS object: a msgpack map of part name to
{dtype, shape, data (the codec's bytes)}. The base entry travels inside the metadata
(`theta_metadata.base`), so rebuilding needs no history walk; see updates.chain.
"""

import io
from abc import abstractmethod

import msgpack

from git_theta import codec, plugins
from git_theta.errors import ThetaError
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import chain
from git_theta.updates.base import Update, UpdateContext
from git_theta.updates.dense import write_object

MAGIC = b"GTPARTS1"


def pack_parts(
    parts: dict[str, RawTensor], compressor: dict | None = None, skip_zero: bool = False, sink=None
) -> bytes | None:
    """The stored form of a change: MAGIC, a little-endian u32 header length, a msgpack header
    {part: [dtype, shape, offset, length]}, then each part's codec bytes, back to back, so
    reading decodes straight from the (mapped) object without copying the payloads."""
    payloads, header, offset = [], {}, 0
    for part_name, part in parts.items():
        buf = io.BytesIO()
        codec.encode(part, buf, compressor, skip_zero)
        data = buf.getvalue()
        header[part_name] = [part.dtype, list(part.shape), offset, len(data)]
        payloads.append(data)
        offset += len(data)
    head = msgpack.packb(header, use_bin_type=True)
    pieces = [MAGIC, len(head).to_bytes(4, "little"), head, *payloads]
    if sink is None:
        return b"".join(pieces)
    for piece in pieces:  # straight into the store: no joined copy of a large change
        sink.write(piece)
    return None


def unpack_parts(blob, name: str) -> dict[str, RawTensor]:
    """Inverse of pack_parts (and of the first layout: one msgpack map holding the bytes)."""
    view = memoryview(blob)
    try:
        if bytes(view[: len(MAGIC)]) == MAGIC:
            n = int.from_bytes(view[len(MAGIC) : len(MAGIC) + 4], "little")
            start = len(MAGIC) + 4 + n
            header = msgpack.unpackb(view[len(MAGIC) + 4 : start], raw=False)
            if not isinstance(header, dict):
                raise TypeError("not a map of parts")
            out = {}
            for k, (dtype, shape, off, length) in header.items():
                if off < 0 or length < 0 or start + off + length > len(view):
                    raise ValueError(f"part {k} runs past the end")
                data = view[start + off : start + off + length]
                out[str(k)] = codec.decode(data, str(dtype), tuple(int(x) for x in shape), f"{name!r} {k}")
            return out
        packed = msgpack.unpackb(view, raw=False)
        if not isinstance(packed, dict):
            raise TypeError("not a map of parts")
        return {
            str(k): codec.decode(
                v["data"], str(v["dtype"]), tuple(int(s) for s in v["shape"]), f"{name!r} {k}"
            )
            for k, v in packed.items()
        }
    except ThetaError:
        raise
    except (ValueError, KeyError, TypeError, msgpack.exceptions.ExtraData) as exc:
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
        entry = self.store_blob(tensor, blob, base, ctx.store)
        if ctx.side is None and not self.exact:
            import hashlib

            stored = self.apply(old, change, entry, ctx.name)
            entry.hash = hashlib.sha256(stored.data).hexdigest()
        return entry

    def store_blob(self, tensor: RawTensor, blob, base: ParamEntry, store: LfsStore) -> ParamEntry:
        """Write packed parts (bytes, or a callable writing them to a sink); the entry applying them to `base`."""
        oid, size = write_object(store, blob)
        codec_name = codec.DELTA_NAME if self.part_compressor is codec.DELTA_COMPRESSOR else codec.NAME
        extra = {"base": base.to_json()}
        return ParamEntry(tensor.dtype, tensor.shape, "", oid, size, self.name, codec_name, extra)

    def read_parts(self, entry: ParamEntry, store: LfsStore, name: str) -> dict[str, RawTensor]:
        """Read and decode this step's stored parts."""
        return unpack_parts(store.read(entry.oid, what=f"parameter {name!r}"), name)
