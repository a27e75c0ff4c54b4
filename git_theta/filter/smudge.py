"""Smudge: metadata -> the checkpoint in its original format, written tensor by tensor.

Every object is present (fetched in one batch if not) before the first byte goes out, and each
is checked against its oid as it is read.
"""

from collections.abc import Callable
from typing import BinaryIO

from git_theta import config, memory, parallel
from git_theta.errors import ThetaError, shorten
from git_theta.formats.detect import by_name
from git_theta.logs import Progress, get_logger
from git_theta.metadata import Metadata, is_metadata
from git_theta.prefetch import ensure_objects
from git_theta.storage import packs, verified
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor, TensorSpec
from git_theta.updates import load_entry

log = get_logger(__name__)

# Bytes of tensors being decoded at once, a change's counted twice (it is applied to a decoded base):
# enough to keep both cores busy, little enough that a checkout stays under the model's size
# (GPT-2-small v3, a chain of two: peak 670-710 MB with three jobs of any size in flight).
DECODE_BUDGET = 192 << 20


def load_tensors(
    meta: Metadata,
    store: LfsStore,
    path: str,
    names: list[str] | None = None,
    offsets: dict[str, int] | None = None,
):
    """Yield the tensors of `meta` (or of `names`) in order, decoded on worker threads, small
    ones in batches (one hand-off per batch); in low-memory mode one job at a time, each
    tensor still decoded in parallel chunks by the codec. With `offsets` (where each tensor
    lies in the file written), each is decoded at its offset within a page (memory.placed)."""
    names = list(meta.params) if names is None else names
    progress = Progress(f"checking out {path}", len(names))

    def decode(name: str) -> RawTensor:
        entry = meta.params[name]
        if offsets is None or entry.nbytes < memory.PLACE_MIN_BYTES:
            return load_entry(entry, store, name)
        with memory.placed(entry.nbytes, offsets[name]):
            return load_entry(entry, store, name)

    def load(job: list[str]) -> list[RawTensor]:
        out = [decode(name) for name in job]
        progress.advance(len(job))
        return out

    ahead = 1 if config.get_bool("low_memory") else 8  # the budget bounds what is in flight

    def cost(name: str) -> int:  # a change is applied to a decoded base: two tensors at once
        entry = meta.params[name]
        return entry.nbytes * (2 if "base" in entry.extra else 1)

    budget = max(DECODE_BUDGET, max((cost(name) for name in names), default=0))
    try:
        for batch in parallel.ordered_map(
            load,
            packs.plan(names, lambda n: meta.params[n].nbytes, in_order=True),
            ahead=ahead,
            cost=lambda job: sum(cost(name) for name in job),
            budget=budget,
        ):
            yield from batch
    finally:
        progress.close()


def prepare(data, path: str, cwd: str | None = None) -> Callable[[BinaryIO], None]:
    """Check the metadata and fetch what is missing; return the writer of the checkpoint.

    Everything that can fail for a foreseeable reason (bad metadata, unknown format, objects
    that cannot be fetched) fails here, before any output; the writer streams tensor by tensor.
    """
    if not is_metadata(data):
        content = bytes(data)
        return lambda out: out.write(content)
    meta = Metadata.loads(data, path)
    store = LfsStore.for_cwd(cwd)
    objects = ensure_objects(meta, store, cwd, path)
    fmt = by_name(meta.format)
    specs = [TensorSpec(name, e.dtype, tuple(e.shape)) for name, e in meta.params.items()]
    fmt.check_layout(meta.layout, specs, path)  # from a file anyone may commit: before any output

    def write(out: BinaryIO) -> None:
        store.prefetch(objects)
        try:
            at = fmt.tensor_offsets(meta.layout, specs, path)
            offsets = None if at is None else dict(zip(meta.params, at))
            fmt.write(meta.layout, specs, load_tensors(meta, store, path, offsets=offsets), out, path)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            # the layout comes from the metadata file, which may have been edited by hand
            raise ThetaError(
                f"the checkpoint layout in its metadata is malformed ({shorten(str(exc), 120)}); "
                "restore the file from a good commit",
                path,
            ) from None
        if verified.enabled():  # every tensor written was checked: a later add may reuse them
            verified.record(store, list(meta.params.values()))
        log.info("smudge %s: %d parameters", path, len(specs))

    return write


def prepare_for_git(data, path: str, cwd: str | None = None) -> Callable[[BinaryIO], None]:
    """prepare() for git's filter process, which holds the whole output in memory: a checkpoint
    too large for that (or any, with GIT_THETA_LOW_MEMORY=1) is left as metadata and noted, and
    the post-checkout hook writes it to disk tensor by tensor (see filter.deferred); a large one
    under checkout/switch/restore/clone is written by this process itself (filter.direct)."""
    from git_theta.filter import deferred

    if is_metadata(data):
        meta = Metadata.loads(data, path)
        if deferred.should_defer(meta):
            deferred.record(path, cwd)
            log.warning(
                "%s: low-memory mode: written after the checkout, tensor by tensor (if it stays "
                "metadata, run `git theta checkout-models %s`)",
                path,
                path,
            )
            content = bytes(data)
            return lambda out: out.write(content)
        if deferred.should_write_directly(meta):
            from git_theta.filter import direct

            write = prepare(data, path, cwd)  # objects fetched, format known: failures show now
            direct.start(data, path, write, cwd)
            log.info("%s: written by the filter once git is done (direct checkout)", path)
            content = bytes(data)
            return lambda out: out.write(content)
    return prepare(data, path, cwd)


def smudge(data, path: str, out: BinaryIO, cwd: str | None = None) -> None:
    """Write the checkpoint that metadata `data` describes to `out`; other content passes through."""
    prepare(data, path, cwd)(out)
