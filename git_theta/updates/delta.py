"""Updates stored as a change to the previous value: the base entry travels inside the metadata.

An entry of a delta type records its base entry (itself dense or another delta) under
`theta_metadata.base`, so a parameter is rebuilt from metadata alone by applying at most
GIT_THETA_MAX_CHAIN (default 8) steps; past that, or when the change cannot be expressed (new
parameter, shape or dtype change) or would not be smaller, the value is stored dense.
The change's parts (small tensors) are packed into one LFS object: a msgpack map of part name
to the codec's bytes for that part.
"""

import io
import os
from abc import abstractmethod

import msgpack

from git_theta import codec, plugins
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates.base import Update, UpdateContext


def max_chain() -> int:
    try:
        return max(1, int(os.environ.get("GIT_THETA_MAX_CHAIN", "8")))
    except ValueError:
        return 8


def depth(entry: ParamEntry | None) -> int:
    """Steps from `entry` down to its dense snapshot (0 for a dense entry)."""
    return int(entry.extra.get("depth", 0)) if entry is not None else 0


class DeltaUpdate(Update):
    """Base class of update types that store a change relative to the parameter's previous value."""

    @abstractmethod
    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        """The change as named tensors, or None when this type cannot express it exactly."""

    @abstractmethod
    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry) -> RawTensor:
        """Rebuild the new value from the previous one and the stored parts."""

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        dense = plugins.updates.get("dense")()
        prev = ctx.previous
        usable = (
            prev is not None
            and ctx.load_previous is not None
            and prev.dtype == tensor.dtype
            and tuple(prev.shape) == tuple(tensor.shape)
            and depth(prev) + 1 < max_chain()
        )
        change = self.parts(tensor, ctx.load_previous()) if usable else None
        if change is None or sum(p.nbytes for p in change.values()) >= tensor.nbytes:
            return dense.store(tensor, ctx)
        writer = ctx.store.writer()
        try:
            packer = msgpack.Packer(use_bin_type=True)
            writer.write(packer.pack_map_header(len(change)))
            for part_name, part in change.items():
                buf = io.BytesIO()
                codec.encode(part, buf)
                writer.write(packer.pack(part_name))
                writer.write(
                    packer.pack({"dtype": part.dtype, "shape": list(part.shape), "data": buf.getvalue()})
                )
        except BaseException:
            writer.abort()
            raise
        oid, size = writer.commit()
        extra = {"base": prev.to_json(), "depth": depth(prev) + 1}
        return ParamEntry(tensor.dtype, tensor.shape, "", oid, size, self.name, codec.NAME, extra)

    @staticmethod
    def base_of(entry: ParamEntry) -> ParamEntry:
        return ParamEntry.from_json(entry.extra["base"], "base")

    def objects(self, entry: ParamEntry) -> dict[str, int]:
        base = self.base_of(entry)
        found = plugins.updates.get(base.update_type)().objects(base)
        found[entry.oid] = entry.size
        return found

    def load(self, entry: ParamEntry, ctx: UpdateContext) -> RawTensor:
        base = self.base_of(entry)
        old = plugins.updates.get(base.update_type)().load(base, ctx)
        blob = ctx.store.read(entry.oid, what=f"parameter {ctx.name!r}")
        try:
            packed = msgpack.unpackb(blob, raw=False)
            parts = {
                k: codec.decode(v["data"], v["dtype"], tuple(v["shape"]), what=f"{ctx.name!r} part {k}")
                for k, v in packed.items()
            }
        except (ValueError, KeyError, TypeError, msgpack.exceptions.ExtraData) as exc:
            from git_theta.errors import ThetaError

            raise ThetaError(f"stored update of parameter {ctx.name!r} is corrupt ({exc})") from None
        return self.apply(old, parts, entry)
