"""Dense updates: the whole tensor is stored, compressed by the codec (a snapshot)."""

import io

from git_theta import codec
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.storage.objects import ObjectStore
from git_theta.tensor import RawTensor
from git_theta.updates.base import Update, UpdateContext


def write_object(store: ObjectStore, payload) -> tuple[str, int]:
    """Put `payload` (bytes, or a callable writing to a sink) in the store; (oid, size)."""
    writer = store.writer()
    try:
        if callable(payload):
            payload(writer)
        else:
            writer.write(payload)
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def encoded(tensor: RawTensor) -> bytes:
    """The stored form of `tensor` as bytes (for sizing candidates before choosing one)."""
    buf = io.BytesIO()
    codec.encode(tensor, buf)
    return buf.getvalue()


class DenseUpdate(Update):
    """Store every value of the parameter; needs nothing earlier to load."""

    name = "dense"
    description = "the whole tensor, compressed"

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        return self.store_payload(tensor, lambda sink: codec.encode(tensor, sink), ctx.store)

    def store_payload(self, tensor: RawTensor, payload, store: ObjectStore) -> ParamEntry:
        """Store an already encoded (or encodable) form of `tensor`."""
        oid, size = write_object(store, payload)
        return ParamEntry(tensor.dtype, tensor.shape, "", oid, size, self.name, codec.name_of(None))

    def load(self, entry: ParamEntry, store: LfsStore, name: str) -> RawTensor:
        blob = store.read_entry(entry, what=f"parameter {name!r}")
        return codec.decode(blob, entry.dtype, entry.shape, what=f"parameter {name!r}")
