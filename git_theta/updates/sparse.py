"""Sparse updates: only the elements that changed.

Computed (plain `git theta add --update-type sparse`): the positions and new bit patterns of the
changed elements - exact, unlike `previous + delta` arithmetic. Side-loaded (the original
git-theta layout): `<param>/data`, `indices`, `indptr` (a scipy CSR matrix of shape (1, N)) and
`shape`; new = previous + the densified update, computed in the parameter's dtype.
"""

import numpy as np

from git_theta import dtypes
from git_theta.errors import ThetaError
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor, numel
from git_theta.updates import words
from git_theta.updates.delta import DeltaUpdate

SIDE_PARTS = ("data", "indices", "indptr", "shape")
_SAMPLE_WINDOWS, _SAMPLE_WINDOW = 32, 1024  # elements sampled by changed_share_at_least


def changed_mask(new: RawTensor, old: RawTensor) -> np.ndarray:
    """Per element: do the bit patterns differ (same shape and dtype assumed)."""
    a, b = words.per_element(old), words.per_element(new)
    neq = a != b
    return neq if neq.ndim == 1 else neq.any(axis=1)


def sample_windows(t: RawTensor) -> np.ndarray | None:
    """The evenly spread windows of elements that the sampled change check compares, as one
    array (None for a tensor small enough to compare whole). Kept instead of a whole previous
    value, they still tell a change of every weight from a sparse one."""
    a = words.per_element(t)
    n = len(a)
    if n <= _SAMPLE_WINDOWS * _SAMPLE_WINDOW * 4:
        return None
    starts = np.linspace(0, n - _SAMPLE_WINDOW, _SAMPLE_WINDOWS).astype(np.int64)
    return np.concatenate([a[s : s + _SAMPLE_WINDOW] for s in starts.tolist()])


def windows_changed_at_least(new: RawTensor, old_windows: np.ndarray | None, share: float) -> bool:
    """Whether at least `share` of the sampled elements differ from `old_windows` (False when
    the tensor is small: the exact mask is cheap enough)."""
    new_windows = sample_windows(new)
    if old_windows is None or new_windows is None or new_windows.shape != old_windows.shape:
        return False
    neq = new_windows != old_windows
    changed = int(np.count_nonzero(neq if neq.ndim == 1 else neq.any(axis=1)))
    return changed >= share * len(new_windows)


def changed_share_at_least(new: RawTensor, old: RawTensor, share: float) -> bool:
    """Whether evenly spread windows of elements say at least `share` of them changed: a check
    at ~1% of the cost of changed_mask, so a change of every weight skips the full comparison."""
    return windows_changed_at_least(new, sample_windows(old), share)


def _smallest_uint(top: int) -> np.dtype:
    for t in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(t).max:
            return np.dtype(t)
    return np.dtype(np.uint64)


class SparseUpdate(DeltaUpdate):
    """New value = previous value with the changed elements replaced (or, from side data, added to)."""

    name = "sparse"
    description = "changed elements only (positions + values); side data: scipy CSR of the change"
    takes_side_data = True
    side_parts = SIDE_PARTS

    @classmethod
    def format_update(cls, param: np.ndarray, *args, **kwargs) -> dict[str, np.ndarray]:
        """The side-file parts of a change (the original's helper): the change flattened to a
        (1, N) CSR matrix, as scipy.sparse.csr_matrix builds it, plus the parameter's shape."""
        flat = np.asarray(param).reshape(-1)
        indices = np.flatnonzero(flat).astype(np.int32)
        return {
            "data": flat[indices],
            "indices": indices,
            "indptr": np.array([0, len(indices)], dtype=np.int32),
            "shape": np.array(np.shape(param)),
        }

    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        if tuple(new.shape) != tuple(old.shape):
            return None
        return self.parts_at(new, changed_mask(new, old))

    def parts_at(self, new: RawTensor, changed: np.ndarray) -> dict[str, RawTensor]:
        """The parts for a known mask of changed elements."""
        b = words.per_element(new)
        idx = np.flatnonzero(changed)
        gaps = np.diff(idx, prepend=-1) if len(idx) else idx  # gap coding: small, compressible
        gaps = gaps.astype(_smallest_uint(int(gaps.max()) if len(gaps) else 0))
        values = np.ascontiguousarray(b[idx]).reshape(-1)
        return {"gaps": RawTensor.from_numpy(gaps), "values": RawTensor.from_numpy(values)}

    def _check_csr(self, parts: dict[str, RawTensor], dtype: str, shape: tuple[int, ...]) -> str | None:
        n = numel(shape)
        given = [int(s) for s in parts["shape"].numpy().reshape(-1)]
        if given != list(shape):
            return f"shape part is {given}, the parameter's shape is {list(shape)}"
        indices, indptr = parts["indices"].numpy().reshape(-1), parts["indptr"].numpy().reshape(-1)
        if parts["data"].numpy().size != indices.size:
            return f"data has {parts['data'].numpy().size} values for {indices.size} indices"
        if indptr.size != 2 or int(indptr[0]) != 0 or int(indptr[1]) != indices.size:
            return f"indptr must be [0, {indices.size}] (one row)"
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
            return f"indices must lie in [0, {n})"
        return None

    def needed_parts(self, parts: dict[str, RawTensor]) -> tuple[str, ...]:
        if "data" in parts:
            return ("data", "indices")
        return ("gaps", "values") if "gaps" in parts else ("indices", "values")

    def check_side(self, parts: dict[str, RawTensor], dtype: str, shape: tuple[int, ...]) -> str | None:
        if "data" in parts and all(p in parts for p in SIDE_PARTS):
            return self._check_csr(parts, dtype, shape)
        index = parts.get("indices") if "data" in parts else parts.get("gaps", parts.get("indices"))
        count = numel(index.shape)
        if dtypes.get(index.dtype).kind not in "iu" or count > numel(shape):
            return f"{count} positions of dtype {index.dtype} for {numel(shape)} elements"
        if "data" in parts:
            if numel(parts["data"].shape) != count:
                return f"data has {numel(parts['data'].shape)} values for {count} indices"
        elif (
            numel(parts["values"].shape) * dtypes.get(parts["values"].dtype).itemsize
            != count * dtypes.get(dtype).itemsize
        ):
            return f"values do not match {count} positions"
        if "data" in parts and count:
            idx = index.numpy().reshape(-1)
            if int(idx.min()) < 0 or int(idx.max()) >= numel(shape):
                return f"indices must lie in [0, {numel(shape)})"
        return None

    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> RawTensor:
        self.check_apply(old, parts, entry, name)
        if "data" in parts:
            return _add_csr(old, parts, entry)
        w = words.per_element(old).copy()
        if "gaps" in parts:
            idx = np.cumsum(parts["gaps"].numpy().astype(np.int64)) - 1
        else:  # the first stored layout: absolute indices
            idx = parts["indices"].numpy().astype(np.int64)
        values = parts["values"].numpy().view(w.dtype).reshape((len(idx),) + w.shape[1:])
        if len(idx) and (idx.min() < 0 or idx.max() >= len(w)):
            raise ThetaError(f"sparse update of parameter {name!r} has positions out of range")
        w[idx] = values
        return words.to_tensor(w, old.dtype, entry.shape)


def _add_csr(old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry) -> RawTensor:
    """previous + densify(CSR update), in the parameter's dtype (duplicates summed, as scipy does)."""
    prev = old.numpy().reshape(-1)
    update = np.zeros(prev.shape, dtype=prev.dtype)
    np.add.at(
        update, parts["indices"].numpy().astype(np.int64).reshape(-1), parts["data"].numpy().reshape(-1)
    )
    return RawTensor.from_numpy((prev + update).reshape(entry.shape), old.dtype)
