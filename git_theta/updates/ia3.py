"""IA3 updates: new = previous * ia3 (broadcast), computed in the parameter's dtype.

Side-loaded: `<param>/ia3`, any shape that broadcasts to the parameter's. Without side data
a scale per row (first axis) is fitted by least squares - an approximation, logged, and the
working file is rewritten to the stored value.
"""

import numpy as np

from git_theta.logs import get_logger
from git_theta.metadata import ParamEntry
from git_theta.tensor import RawTensor
from git_theta.updates.delta import DeltaUpdate

log = get_logger(__name__)


class IA3Update(DeltaUpdate):
    """A learned rescaling of the previous value."""

    name = "ia3"
    description = (
        "new = previous * ia3 (side data: <param>/ia3); computed: least-squares row scales, approximate"
    )
    takes_side_data = True
    side_parts = ("ia3",)
    exact = False

    @classmethod
    def format_update(cls, param: np.ndarray, *args, **kwargs) -> dict[str, np.ndarray]:
        """The side-file parts (the original's helper): the scale as ia3."""
        return {"ia3": param}

    def parts(self, new: RawTensor, old: RawTensor) -> dict[str, RawTensor] | None:
        if len(new.shape) < 2 or tuple(new.shape) != tuple(old.shape) or new.dtype != old.dtype:
            return None  # a vector is its own best scale: the caller stores it exactly
        if old.numpy().dtype.kind != "f":
            return None
        rows = new.shape[0]
        a = old.numpy().astype(np.float64).reshape(rows, -1)
        b = new.numpy().astype(np.float64).reshape(rows, -1)
        norm = np.einsum("ij,ij->i", a, a)
        scale = np.where(norm > 0, np.einsum("ij,ij->i", a, b) / np.where(norm > 0, norm, 1), 1.0)
        err = float(np.abs(a * scale[:, None] - b).max()) if b.size else 0.0
        log.warning("ia3: stored least-squares row scales of the change (max abs error %.3g)", err)
        shape = (rows,) + (1,) * (len(new.shape) - 1)
        return {"ia3": RawTensor.from_numpy(scale.reshape(shape).astype(old.numpy().dtype), old.dtype)}

    def check_side(self, parts: dict[str, RawTensor], dtype: str, shape: tuple[int, ...]) -> str | None:
        got = tuple(parts["ia3"].shape)
        try:
            if np.broadcast_shapes(got, tuple(shape)) == tuple(shape):
                return None
        except ValueError:
            pass
        return f"ia3 of shape {list(got)} does not broadcast to {list(shape)}"

    def apply(self, old: RawTensor, parts: dict[str, RawTensor], entry: ParamEntry, name: str) -> RawTensor:
        self.check_apply(old, parts, entry, name)
        new = old.numpy().reshape(entry.shape) * parts["ia3"].numpy()
        return RawTensor.from_numpy(np.ascontiguousarray(new).reshape(entry.shape), old.dtype)
