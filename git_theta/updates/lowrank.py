"""Low-rank updates (LoRA): new = previous + R @ C, computed in the parameter's dtype.

Side-loaded, for a parameter of shape (d0, ..., dn), in either of two layouts:

- the original git-theta's: `<param>/R` of shape (d0, ..., d(n-1), k) and `<param>/C` of shape
  (k, dn), applied with numpy's batched matmul (what its users' side files hold, for example
  R (16, 3, 3, 2) @ C (2, 3) for a (16, 3, 3, 3) conv kernel);
- flattened: `R` (d0, k) and `C` (k, d1*...*dn), the parameter seen as a (d0, d1*...*dn) matrix
  (what LoRA training scripts produce, and what a computed update stores).

For a matrix both are R (d0, k), C (k, d1). Without side data the change is
approximated by a truncated SVD (rank GIT_THETA_LOW_RANK_K, or the numerical rank of the change)
and the working file is rewritten to the stored value; the loss is logged.
"""

import os

import numpy as np

from git_theta.errors import ThetaError
from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor, numel
from git_theta.updates.delta import DeltaUpdate

log = get_logger(__name__)
_RANK_TOLERANCE = 1e-3  # singular values below this share of the largest are noise


def _matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    return int(shape[0]), numel(shape[1:])


def rank_from_env() -> int | None:
    value = os.environ.get("GIT_THETA_LOW_RANK_K", "").strip()
    if not value:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise ThetaError(f"GIT_THETA_LOW_RANK_K={value!r} is not a positive integer") from None


class LowRankUpdate(DeltaUpdate):
    """A change of rank r stored as its two factors."""

    name = "low-rank"
    aliases = ("lowrank", "lora")
    description = "change = R @ C (side data: <param>/R, <param>/C); computed: truncated SVD, approximate"
    takes_side_data = True
    side_parts = ("R", "C")
    exact = False

    @classmethod
    def format_update(cls, param1: np.ndarray, param2: np.ndarray, *args, **kwargs) -> dict[str, np.ndarray]:
        """The side-file parts (the original's helper): the two factors as R and C."""
        return {"R": param1, "C": param2}

    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        if len(new.shape) < 2 or tuple(new.shape) != tuple(old.shape) or new.dtype != old.dtype:
            return None  # a bias or a reshaped parameter: the caller falls back to an exact encoding
        if old.numpy().dtype.kind != "f":
            return None
        m, n = _matrix_shape(new.shape)
        change = new.numpy().astype(np.float64).reshape(m, n) - old.numpy().astype(np.float64).reshape(m, n)
        u, s, vt = np.linalg.svd(change, full_matrices=False)
        k = rank_from_env()
        if k is None:
            k = int(np.count_nonzero(s > s[0] * _RANK_TOLERANCE)) if len(s) and s[0] > 0 else 0
        k = max(1, min(k, len(s)))
        if k * (m + n) >= m * n:
            return None  # factors would not be smaller than the tensor
        r = (u[:, :k] * s[:k]).astype(old.numpy().dtype)
        c = np.ascontiguousarray(vt[:k]).astype(old.numpy().dtype)
        approx = r.astype(np.float64) @ c.astype(np.float64)
        err = float(np.abs(approx - change).max()) if change.size else 0.0
        log.warning("low-rank: stored a rank-%d approximation of the change (max abs error %.3g)", k, err)
        return {"R": RawTensor.from_numpy(r, old.dtype), "C": RawTensor.from_numpy(c, old.dtype)}

    def check_side(self, parts: dict[str, RawTensor], dtype: str, shape: tuple[int, ...]) -> str | None:
        if len(shape) < 2:
            return f"low-rank needs a parameter of 2 or more dimensions, it has shape {list(shape)}"
        r, c = tuple(parts["R"].shape), tuple(parts["C"].shape)
        if _batched(r, c, shape) or _flattened(r, c, shape):
            return None
        m, n = _matrix_shape(shape)
        batched = f"R {[*shape[:-1], 'k']} @ C {['k', shape[-1]]}"
        return f"R {list(r)} @ C {list(c)} does not give {list(shape)} (expected {batched} or R [{m}, k] @ C [k, {n}])"

    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> RawTensor:
        self.check_apply(old, parts, entry, name)
        prev = old.numpy()
        r, c = parts["R"].numpy(), parts["C"].numpy()
        shape = tuple(entry.shape)
        if r.ndim > 2 and _batched(r.shape, c.shape, shape):
            return RawTensor.from_numpy(r @ c + prev, old.dtype)  # the original's expression, bit for bit
        m, n = _matrix_shape(shape)
        new = prev.reshape(m, n) + r @ c
        return RawTensor.from_numpy(new.reshape(shape), old.dtype)


def _batched(r: tuple[int, ...], c: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """The original's layout: R (d0, ..., d(n-1), k) @ C (k, dn) by numpy's batched matmul."""
    return len(r) == len(shape) and len(c) == 2 and r[:-1] == shape[:-1] and c == (r[-1], shape[-1])


def _flattened(r: tuple[int, ...], c: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """R (d0, k) @ C (k, d1*...*dn), the parameter as a (d0, rest) matrix."""
    m, n = _matrix_shape(shape)
    return len(r) == 2 and len(c) == 2 and r[0] == m and c[1] == n and r[1] == c[0]
