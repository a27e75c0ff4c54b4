"""Dense updates: the whole tensor is stored, compressed by the codec."""

from git_theta import codec
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates.base import Update, UpdateContext


class DenseUpdate(Update):
    """Store every value of the parameter; needs nothing earlier to load."""

    name = "dense"

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        writer = ctx.store.writer()
        try:
            codec.encode(tensor, writer)
        except BaseException:
            writer.abort()
            raise
        oid, size = writer.commit()
        return ParamEntry(tensor.dtype, tensor.shape, "", oid, size, self.name, codec.NAME)

    def load(self, entry: ParamEntry, ctx: UpdateContext) -> RawTensor:
        blob = ctx.store.read(entry.oid, what=f"parameter {ctx.name!r}")
        return codec.decode(blob, entry.dtype, entry.shape, what=f"parameter {ctx.name!r}")
