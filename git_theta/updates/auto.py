"""The default update type: per changed parameter, the smallest exact encoding.

Candidates: dense (the new tensor compressed), sparse (positions and new values of the changed
elements, on the previous value) and bitdelta (bit-pattern differences against the snapshot).
Sparse is sized exactly (it is small when it is a candidate at all); dense and bitdelta are
sized exactly for small tensors and estimated from sampled windows for large ones, so choosing
costs a fraction of one encode. The stored entry records the type chosen.
"""

from collections.abc import Callable

import numpy as np

from git_theta import codec, dtypes
from git_theta.errors import ThetaError
from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor, numel
from git_theta.updates import chain, policy, words
from git_theta.updates.base import Update, UpdateContext
from git_theta.updates.bitdelta import BitDeltaUpdate
from git_theta.updates.delta import DeltaUpdate, pack_parts
from git_theta.updates.dense import DenseUpdate, encoded
from git_theta.updates.sparse import (
    SparseUpdate,
    changed_mask,
    changed_share_at_least,
    windows_changed_at_least,
)

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


class _Candidate:
    """One way to store the new value: its (estimated) size, and `write`, which stores it; with a
    `limit`, `write(limit)` gives up (None, nothing stored) once the encoding outgrows it."""

    __slots__ = ("size", "label", "write", "limit")

    def __init__(self, size: float, label: str, write: Callable, limit: float | None = None):
        self.size, self.label, self.write, self.limit = size, label, write, limit

    def store(self) -> ParamEntry | None:
        """Write this candidate; None when it outgrew its limit."""
        return self.write() if self.limit is None else self.write(self.limit)


def _previous_mostly_changed(tensor: RawTensor, ctx: UpdateContext, share: float) -> bool:
    """Whether sampled elements say at least `share` of `tensor` differs from the previous value
    (from the windows the caller kept when it holds no previous value: no rebuild)."""
    if ctx.previous_windows is not None and ctx.previous_value is None:
        return windows_changed_at_least(tensor, ctx.previous_windows, share)
    return changed_share_at_least(tensor, ctx.previous_values()[0], share)


class _Choice:
    """Choosing how to store one changed parameter: the room the storage policy leaves a change
    on the previous value and on its snapshot, and the candidates offered so far."""

    def __init__(self, tensor: RawTensor, ctx: UpdateContext):
        self.tensor, self.ctx, self.prev = tensor, ctx, ctx.previous
        self.snap_entry = chain.snapshot_of(self.prev, ctx.name)
        # bytes a change may take on the previous value / on the snapshot (inf: no bound)
        self.room_prev = policy.room(self.prev, tensor.nbytes, ctx.name)
        self.room_snap = policy.room(self.snap_entry, tensor.nbytes, ctx.name)
        self.candidates: list[_Candidate] = []
        self.dense, self.sparse, self.bitdelta = DenseUpdate(), SparseUpdate(), BitDeltaUpdate()

    def grown_on_change(self) -> bool:
        """Rows were appended to a value that is itself a change."""
        return tuple(self.prev.shape) != tuple(self.tensor.shape) and chain.depth(self.prev) > 0

    def offer(self, kind: DeltaUpdate, blob: bytes, base: ParamEntry, room: float) -> None:
        """Add an encoded change on `base` as a candidate when the policy's room allows."""
        if len(blob) <= room:
            self.candidates.append(
                _Candidate(
                    len(blob), kind.name, lambda: kind.store_blob(self.tensor, blob, base, self.ctx.store)
                )
            )

    def offer_dense(self, size: float, blob: bytes | None = None) -> None:
        """Add the value stored whole (`blob` when already encoded) as a candidate of `size` bytes."""
        if blob is None:
            self.candidates.append(_Candidate(size, "dense", lambda: self.dense.store(self.tensor, self.ctx)))
        else:
            self.candidates.append(
                _Candidate(size, "dense", lambda: self.dense.store_payload(self.tensor, blob, self.ctx.store))
            )

    def offer_sparse(self) -> None:
        """The changed elements on the previous value, when few enough changed (sized exactly)."""
        tensor, prev = self.tensor, self.prev
        if (
            self.room_prev < MIN_CHANGE_BYTES
            or tuple(prev.shape) != tuple(tensor.shape)
            or prev.dtype != tensor.dtype
            or not self.sparse.can_chain(prev, tensor)
            or _previous_mostly_changed(tensor, self.ctx, DENSE_SAMPLE_SHARE)
        ):
            return
        mask = changed_mask(tensor, self.ctx.previous_values()[0])
        if np.count_nonzero(mask) <= SPARSE_SHARE * numel(tensor.shape):
            self.offer(self.sparse, pack_parts(self.sparse.parts_at(tensor, mask)), prev, self.room_prev)

    def stream_bitdelta(self, parts: dict[str, RawTensor], limit: float) -> ParamEntry | None:
        """Encode a bit delta on the snapshot straight into the store; None (nothing stored) once
        it outgrows `limit` bytes."""
        bitdelta = self.bitdelta
        return _within(
            limit,
            lambda sink: pack_parts(parts, bitdelta.part_compressor, True, sink),
            lambda payload: bitdelta.store_blob(self.tensor, payload, self.snap_entry, self.ctx.store),
        )

    def offer_appended_rows(self, old: RawTensor) -> None:
        """Rows appended to a value that is itself a change: against the previous value the old
        rows cost nothing, against the snapshot they would carry the earlier change again."""
        if not self.bitdelta.can_chain(self.prev, self.tensor) or self.room_prev < MIN_CHANGE_BYTES:
            return
        parts = self.bitdelta.parts(self.tensor, old)
        if parts is not None:
            blob = pack_parts(parts, self.bitdelta.part_compressor, True)
            self.offer(self.bitdelta, blob, self.prev, self.room_prev)

    def store_smallest(self) -> ParamEntry:
        """Write the smallest candidate that stays within its limit (dense has none)."""
        ranked = sorted(self.candidates, key=lambda c: c.size)
        log.debug("auto %s: %s", self.ctx.name, ", ".join(f"{c.label} {c.size:.0f}" for c in ranked))
        for candidate in ranked:
            entry = candidate.store()
            if entry is not None:
                return entry
            log.debug("auto %s: %s outgrew its room (%.0f)", self.ctx.name, candidate.label, candidate.limit)
        # not reached: dense is always a candidate without a limit
        return self.dense.store(self.tensor, self.ctx)


class AutoUpdate(Update):
    """Chooses, for each changed parameter, the smallest exact encoding (the default) whose fetch
    closure the storage policy allows (updates.policy)."""

    name = "auto"
    description = "smallest exact encoding per parameter: dense, sparse or bitdelta (default)"

    def store(self, tensor: RawTensor, ctx: UpdateContext) -> ParamEntry:
        dense = DenseUpdate()
        if tensor.nbytes == 0 or not ctx.previous_usable():
            return dense.store(tensor, ctx)
        choice = _Choice(tensor, ctx)
        if max(choice.room_prev, choice.room_snap) < MIN_CHANGE_BYTES:
            # no change could fit: store the value whole without decoding what it builds on
            log.debug("auto %s: dense (no room for a change under the storage policy)", ctx.name)
            return dense.store(tensor, ctx)
        if self._sample_says_dense(tensor, ctx.previous, choice.room_snap, ctx):
            log.debug("auto %s: dense (a sampled chunk of the previous value changed throughout)", ctx.name)
            return dense.store(tensor, ctx)
        grown = choice.grown_on_change()
        try:  # a corrupt earlier object must not block storing the new value
            snap = ctx.snapshot_value()
            choice.offer_sparse()
            old = ctx.previous_values()[0] if grown else None
        except ThetaError as exc:
            log.warning("%s; storing %s whole instead of as a change", exc, ctx.name)
            return dense.store(tensor, ctx)
        if not grown:
            ctx.keep_snapshot_only()  # the previous value is not needed past here: free it early
        entry = self._offer_bitdelta(choice, snap, grown)
        if entry is not None:
            return entry
        if grown:
            choice.offer_appended_rows(old)
        return choice.store_smallest()

    def _offer_bitdelta(self, choice: _Choice, snap: RawTensor, grown: bool) -> ParamEntry | None:
        """Offer a bit delta on the snapshot and dense; a large bit delta on an unchanged shape is
        stored at once when it stays under the cheapest alternative (its entry is returned)."""
        tensor, bitdelta = choice.tensor, choice.bitdelta
        delta_parts = None
        if (
            snap.dtype == tensor.dtype
            and bitdelta.can_chain(choice.snap_entry, tensor)
            and self._delta_may_fit(tensor, snap, choice.room_snap)
        ):
            # written before this thread computes another change, so the scratch buffer will do
            delta_parts = bitdelta.parts(tensor, snap, reuse=not grown)
        if delta_parts is not None and tensor.nbytes <= EXACT_BYTES:
            choice.offer(
                bitdelta,
                pack_parts(delta_parts, bitdelta.part_compressor, True),
                choice.snap_entry,
                choice.room_snap,
            )
            dense_blob = encoded(tensor)
            choice.offer_dense(len(dense_blob), dense_blob)
        elif delta_parts is not None and not grown:
            # large: the change is encoded straight into the store and given up as soon as it
            # outgrows the cheaper of dense (the snapshot's stored size when it is dense: its
            # compressibility hardly moves) and sparse, or the room the policy leaves it
            est_dense = self._dense_estimate(tensor, choice.snap_entry)
            limit = min([est_dense, choice.room_snap] + [c.size for c in choice.candidates])
            entry = choice.stream_bitdelta(delta_parts, limit)
            if entry is not None:
                log.debug("auto %s: bitdelta %d (under %.0f)", choice.ctx.name, entry.size, limit)
                return entry
            choice.offer_dense(est_dense)
        elif delta_parts is not None:
            est_delta, est_dense = self._estimates(tensor, delta_parts)
            choice.candidates.append(
                _Candidate(
                    est_delta,
                    "bitdelta",
                    lambda limit: choice.stream_bitdelta(delta_parts, limit),
                    choice.room_snap,
                )
            )
            choice.offer_dense(est_dense)
        else:
            choice.offer_dense(tensor.nbytes)
        return None

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
