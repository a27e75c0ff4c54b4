"""Low-rank updates (LoRA): new = previous + R @ C, computed in the parameter's dtype.

Side-loaded: `<param>/R` of shape (d0, r) and `<param>/C` of shape (r, d1*...*dn), as the
original git-theta and LoRA training scripts produce. Without side data the change is
approximated by a truncated SVD (rank GIT_THETA_LOW_RANK_K, or the numerical rank of the change)
and the working file is rewritten to the stored value; the loss is logged.
"""

import os

import numpy as np

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
        from git_theta.errors import ThetaError

        raise ThetaError(f"GIT_THETA_LOW_RANK_K={value!r} is not a positive integer") from None


class LowRankUpdate(DeltaUpdate):
    """A change of rank r stored as its two factors."""

    name = "low-rank"
    aliases = ("lowrank", "lora")
    description = "change = R @ C (side data: <param>/R, <param>/C); computed: truncated SVD, approximate"
    takes_side_data = True
    side_parts = ("R", "C")
    exact = False

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
        m, n = _matrix_shape(shape)
        r, c = parts["R"].shape, parts["C"].shape
        if len(r) != 2 or len(c) != 2 or r[0] != m or c[1] != n or r[1] != c[0]:
            return f"R {list(r)} @ C {list(c)} does not give a ({m}, {n}) change"
        return None

    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> RawTensor:
        self.check_apply(old, parts, entry, name)
        prev = old.numpy()
        r, c = parts["R"].numpy(), parts["C"].numpy()
        m, n = _matrix_shape(entry.shape)
        new = prev.reshape(m, n) + r @ c
        return RawTensor.from_numpy(new.reshape(entry.shape), old.dtype)
