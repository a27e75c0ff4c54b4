"""The default update type: per changed parameter, the smallest exact encoding.

Candidates: dense (the new tensor compressed), sparse (positions and new values of the changed
elements, on the previous value) and bitdelta (bit-pattern differences against the snapshot).
Sparse is sized exactly (it is small when it is a candidate at all); dense and bitdelta are
sized exactly for small tensors and estimated from sampled windows for large ones, so choosing
costs a fraction of one encode. The stored entry records the type chosen.
"""

import numpy as np

from git_theta import codec, dtypes
from git_theta.errors import ThetaError
from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor, numel
from git_theta.updates import chain, policy, words
from git_theta.updates.base import Update, UpdateContext
from git_theta.updates.bitdelta import BitDeltaUpdate
from git_theta.updates.delta import pack_parts
from git_theta.updates.dense import DenseUpdate, encoded
from git_theta.updates.sparse import SparseUpdate, changed_mask

log = get_logger(__name__)
EXACT_BYTES = 1 << 20  # below this, candidates are encoded whole rather than sampled
WINDOW_BYTES = 256 << 10
WINDOWS = 3
SPARSE_SHARE = 0.25  # sparse is tried when at most this share of the elements changed
DENSE_SAMPLE_SHARE = 0.6  # sampled share of changed elements past which sparse is not tried
MIN_CHANGE_BYTES = 64  # a stored change takes at least its header: with less room, store dense
# a large change is computed when its sampled estimate is within this factor of the policy's
# room (sampled windows of a change that touches only part of a tensor overestimate it <= ~2x)
FIT_MARGIN = 2.0


def _windows(nonzero_chunks: list[int], chunk_elems: int, total: int, window: int) -> list[int]:
    """Start offsets (in words) of sampling windows spread over the chunks that hold data."""
    if not nonzero_chunks:
        return []
    picks = np.linspace(0, len(nonzero_chunks) - 1, num=min(WINDOWS, len(nonzero_chunks))).round().astype(int)
    starts = []
    for p in sorted(set(picks.tolist())):
        lo = nonzero_chunks[p] * chunk_elems
        hi = min(total, lo + chunk_elems)
        starts.append(max(lo, lo + (hi - lo - window) // 2))
    return starts


def _sample_ratio(arr: np.ndarray, starts: list[int], window: int, compressor, skip_zero: bool) -> float:
    sizes = raw = 0
    for s in starts:
        piece = arr[s : s + window]
        sizes += len(pack_parts({"x": RawTensor.from_numpy(piece)}, compressor, skip_zero))
        raw += piece.nbytes
    return sizes / raw if raw else 0.0


class _TooLarge(Exception):
    """Raised through a store's writer once an encoding passes its limit (the writer aborts)."""


class _Limited:
    """A sink that refuses to take more than `limit` bytes."""

    def __init__(self, sink, limit: float):
        self.sink, self.left = sink, limit

    def write(self, data) -> int:
        self.left -= len(memoryview(data).cast("B"))
        if self.left < 0:
            raise _TooLarge
        return self.sink.write(data)


def _within(limit: float, encode, store):
    """`store(payload)` where payload streams `encode` into the store; None (nothing stored)
    when the encoding would take more than `limit` bytes."""
    try:
        return store(lambda sink: encode(_Limited(sink, limit)))
    except _TooLarge:
        return None


def _offer(candidates: list, blob: bytes, label: str, room: float, store) -> None:
    """Add an encoded change as a candidate (`store(blob)` writes it) when the policy's room allows."""
    if len(blob) <= room:
        candidates.append((len(blob), label, lambda: store(blob), None))


def _size(candidate: tuple) -> float:
    return candidate[0]


class AutoUpdate(Update):
    """Chooses, for each changed parameter, the smallest exact encoding (the default) whose fetch
    closure the storage policy allows (updates.policy)."""

    name = "auto"
    description = "smallest exact encoding per parameter: dense, sparse or bitdelta (default)"

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        dense = DenseUpdate()
        if tensor.nbytes == 0 or not ctx.previous_usable():
            return dense.store(tensor, ctx)
        prev = ctx.previous
        snap_entry = chain.snapshot_of(prev, ctx.name)
        # bytes a change may take on the previous value / on the snapshot (inf: no bound)
        room_prev = policy.room(prev, tensor.nbytes, ctx.name)
        room_snap = policy.room(snap_entry, tensor.nbytes, ctx.name)
        if max(room_prev, room_snap) < MIN_CHANGE_BYTES:
            # no change could fit: store the value whole without decoding what it builds on
            log.debug("auto %s: dense (no room for a change under the storage policy)", ctx.name)
            return dense.store(tensor, ctx)
        if self._sample_says_dense(tensor, prev, room_snap, ctx):
            log.debug("auto %s: dense (a sampled chunk of the previous value changed throughout)", ctx.name)
            return dense.store(tensor, ctx)
        # (size, label, store, limit) candidates; `store` writes the chosen one, giving up (None)
        # when `limit` is given and the encoding outgrows it
        candidates: list[tuple[float, str, object, float | None]] = []
        sparse, bitdelta = SparseUpdate(), BitDeltaUpdate()
        grown_on_change = tuple(prev.shape) != tuple(tensor.shape) and chain.depth(prev) > 0
        try:  # a corrupt earlier object must not block storing the new value
            snap = ctx.snapshot_value()
            if (
                room_prev >= MIN_CHANGE_BYTES
                and tuple(prev.shape) == tuple(tensor.shape)
                and prev.dtype == tensor.dtype
                and sparse.can_chain(prev, tensor)
                and not ctx.previous_mostly_changed(tensor, DENSE_SAMPLE_SHARE)
            ):
                mask = changed_mask(tensor, ctx.previous_values()[0])
                if np.count_nonzero(mask) <= SPARSE_SHARE * numel(tensor.shape):
                    blob = pack_parts(sparse.parts_at(tensor, mask))
                    _offer(
                        candidates,
                        blob,
                        "sparse",
                        room_prev,
                        lambda b: sparse.store_blob(tensor, b, prev, ctx.store),
                    )
                del mask
            old = ctx.previous_values()[0] if grown_on_change else None
        except ThetaError as exc:
            log.warning("%s; storing %s whole instead of as a change", exc, ctx.name)
            return dense.store(tensor, ctx)
        if not grown_on_change:
            ctx.keep_snapshot_only()  # the previous value is not needed past here: free it early
        delta_parts = None
        if (
            snap.dtype == tensor.dtype
            and bitdelta.can_chain(snap_entry, tensor)
            and self._delta_may_fit(tensor, snap, room_snap)
        ):
            # written before this thread computes another change, so the scratch buffer will do
            delta_parts = bitdelta.parts(tensor, snap, reuse=not grown_on_change)
        if delta_parts is not None and tensor.nbytes <= EXACT_BYTES:
            blob = pack_parts(delta_parts, bitdelta.part_compressor, True)
            _offer(
                candidates,
                blob,
                "bitdelta",
                room_snap,
                lambda b: bitdelta.store_blob(tensor, b, snap_entry, ctx.store),
            )
            dense_blob = encoded(tensor)
            candidates.append(
                (len(dense_blob), "dense", lambda: dense.store_payload(tensor, dense_blob, ctx.store), None)
            )
        elif delta_parts is not None and not grown_on_change:
            # large: the change is encoded straight into the store and given up as soon as it
            # outgrows the cheaper of dense (the snapshot's stored size when it is dense: its
            # compressibility hardly moves) and sparse, or the room the policy leaves it
            est_dense = self._dense_estimate(tensor, snap_entry)
            limit = min([est_dense, room_snap] + [c[0] for c in candidates])
            entry = _within(
                limit,
                lambda sink: pack_parts(delta_parts, bitdelta.part_compressor, True, sink),
                lambda payload: bitdelta.store_blob(tensor, payload, snap_entry, ctx.store),
            )
            if entry is not None:
                log.debug("auto %s: bitdelta %d (under %.0f)", ctx.name, entry.size, limit)
                return entry
            candidates.append((est_dense, "dense", lambda: dense.store(tensor, ctx), None))
        elif delta_parts is not None:
            est_delta, est_dense = self._estimates(tensor, delta_parts)
            candidates.append(
                (
                    est_delta,
                    "bitdelta",
                    lambda limit: _within(
                        limit,
                        lambda sink: pack_parts(delta_parts, bitdelta.part_compressor, True, sink),
                        lambda payload: bitdelta.store_blob(tensor, payload, snap_entry, ctx.store),
                    ),
                    room_snap,
                )
            )
            candidates.append((est_dense, "dense", lambda: dense.store(tensor, ctx), None))
        else:
            candidates.append((tensor.nbytes, "dense", lambda: dense.store(tensor, ctx), None))
        if grown_on_change and bitdelta.can_chain(prev, tensor) and room_prev >= MIN_CHANGE_BYTES:
            # rows appended to a value that is itself a change: against the previous value the
            # old rows cost nothing, against the snapshot they would carry the earlier change again
            prev_parts = bitdelta.parts(tensor, old)
            if prev_parts is not None:
                blob2 = pack_parts(prev_parts, bitdelta.part_compressor, True)
                _offer(
                    candidates,
                    blob2,
                    "bitdelta",
                    room_prev,
                    lambda b: bitdelta.store_blob(tensor, b, prev, ctx.store),
                )
        log.debug(
            "auto %s: %s", ctx.name, ", ".join(f"{c[1]} {c[0]:.0f}" for c in sorted(candidates, key=_size))
        )
        for _, label, write, limit in sorted(candidates, key=_size):
            entry = write() if limit is None else write(limit)
            if entry is not None:
                return entry
            log.debug("auto %s: %s outgrew its room (%.0f)", ctx.name, label, limit)
        return dense.store(tensor, ctx)  # not reached: dense is always a candidate without a limit

    @staticmethod
    def _sample_says_dense(tensor: RawTensor, prev: ParamEntry, room: float, ctx: UpdateContext) -> bool:
        """Whether one decoded chunk of the previous value (a dense snapshot) already shows a change
        of most elements whose bit delta would outgrow `room`: then the new value is stored whole
        without decoding the previous one. On `git add` of a full fine-tune of GPT-2-small this
        decodes 140 of 498 MB (the smallest chunk of each tensor) instead of all of it, 0.8 of
        the add's 3.5 s here. A wrong guess only stores a snapshot where a delta would do."""
        if (
            room == float("inf")
            or tensor.nbytes <= EXACT_BYTES
            or prev.update_type != "dense"
            or prev.codec not in (codec.NAME, codec.BLOSC_NAME)
            or "base" in prev.extra
            or "pack" in prev.extra
            or prev.dtype != tensor.dtype
            or tuple(prev.shape) != tuple(tensor.shape)
        ):
            return False
        blob = ctx.store.map_unverified(prev.oid)
        if blob is None:
            return False
        try:
            start, old = codec.decode_sample(blob, prev.dtype, tuple(prev.shape))
        except ThetaError:
            return False  # the full path reads it again and says what is wrong
        finally:
            blob.close()
        item = dtypes.get(tensor.dtype).itemsize
        region = np.frombuffer(tensor.data, dtype=np.uint8)[start * item : start * item + len(old)]
        if region.size == 0:
            return False
        wd = words.word_dtype(tensor.dtype)
        new_w = np.frombuffer(region, dtype=wd)
        old_w = np.frombuffer(np.ascontiguousarray(old).reshape(-1).view(np.uint8), dtype=wd)
        if len(old_w) != len(new_w):
            return False
        per = item // new_w.itemsize
        diff = new_w != old_w
        changed = np.count_nonzero(diff if per == 1 else diff.reshape(-1, per).any(axis=1))
        if changed < DENSE_SAMPLE_SHARE * (len(new_w) // per):
            return False
        take = min(len(new_w), max(1, WINDOWS * WINDOW_BYTES // new_w.itemsize))
        lo = (len(new_w) - take) // 2
        piece = words.zigzag_diff(new_w[lo : lo + take], old_w[lo : lo + take])
        ratio = (
            len(pack_parts({"x": RawTensor.from_numpy(piece)}, codec.DELTA_COMPRESSOR, True)) / piece.nbytes
        )
        return ratio * tensor.nbytes > FIT_MARGIN * room

    @staticmethod
    def _delta_may_fit(tensor: RawTensor, snap: RawTensor, room: float) -> bool:
        """Whether a bit delta against `snap` may fit in `room` bytes: for a large tensor, sampled
        windows of the change are encoded first (3 x 256 kB), so a full fine-tune with little room
        (0.12 of raw on a dense snapshot) skips the whole-tensor difference, its scratch buffer
        (154 MB for GPT-2's embedding) and an encode that would be given up part-way."""
        if room < MIN_CHANGE_BYTES:
            return False
        if room == float("inf") or tensor.nbytes <= EXACT_BYTES:
            return True
        new, old = words.words(tensor), words.words(snap)
        n = min(len(new), len(old))
        window = max(1, WINDOW_BYTES // new.itemsize)
        if n <= window * WINDOWS or new.dtype != old.dtype:
            return True
        sizes = raw = 0
        for s in sorted({int(x) for x in np.linspace(0, n - window, num=WINDOWS)}):
            piece = words.zigzag_diff(new[s : s + window], old[s : s + window])
            sizes += len(pack_parts({"x": RawTensor.from_numpy(piece)}, codec.DELTA_COMPRESSOR, True))
            raw += piece.nbytes
        estimate = sizes / raw * n * new.itemsize
        return estimate <= FIT_MARGIN * room

    def _dense_estimate(self, tensor: RawTensor, snap_entry: ParamEntry) -> float:
        """Stored size of `tensor` whole: the snapshot's when it is a dense one of the same
        dtype and shape, else estimated from sampled windows."""
        if (
            snap_entry.update_type == "dense"
            and snap_entry.dtype == tensor.dtype
            and tuple(snap_entry.shape) == tuple(tensor.shape)
            and snap_entry.size
        ):
            return float(snap_entry.size)
        new = words.words(tensor)
        window = max(1, WINDOW_BYTES // new.itemsize)
        starts = [int(s) for s in np.linspace(0, max(0, len(new) - window), num=WINDOWS)]
        return _sample_ratio(new, sorted(set(starts)), window, None, False) * tensor.nbytes

    @staticmethod
    def _estimates(tensor: RawTensor, parts: dict[str, RawTensor]) -> tuple[float, float]:
        """Estimated stored sizes of (bitdelta, dense) from sampled windows of a large tensor."""
        delta = parts["delta"].numpy()
        item = delta.itemsize
        chunk_elems = max(1, codec.zero_chunk_bytes(parts["delta"].dtype) // item)
        nonzero = [
            i
            for i in range(-(-len(delta) // chunk_elems))
            if delta[i * chunk_elems : (i + 1) * chunk_elems].any()
        ]
        window = max(1, WINDOW_BYTES // item)
        starts = _windows(nonzero, chunk_elems, len(delta), window)
        ratio = _sample_ratio(delta, starts, window, codec.DELTA_COMPRESSOR, True)
        nonzero_bytes = sum(min(chunk_elems, len(delta) - i * chunk_elems) for i in nonzero) * item
        est_delta = ratio * nonzero_bytes
        if "tail" in parts:
            tail = parts["tail"].numpy()
            est_delta += (
                _sample_ratio(tail, [0], max(1, WINDOW_BYTES // tail.itemsize), None, False) * tail.nbytes
            )
        new = words.words(tensor)
        dense_starts = starts or [0]
        dense_starts = [min(s, max(0, len(new) - window)) for s in dense_starts]
        est_dense = _sample_ratio(new, dense_starts, window, None, False) * tensor.nbytes
        return est_delta, est_dense

    def load(self, entry: ParamEntry, store, name: str) -> RawTensor:
        raise ThetaError(f"metadata of parameter {name!r} names update type 'auto', which is never stored")
