"""Per-parameter change statistics, computed from the tensors one parameter at a time."""

from dataclasses import asdict, dataclass, field

import numpy as np

from git_theta import parallel
from git_theta.diffs.sides import ModelSide, ParamInfo
from git_theta.tensor import RawTensor, numel

_BLOCK = 1 << 22  # elements per step: memory stays near the two tensors being compared


@dataclass
class Numbers:
    """How a modified parameter moved (None where undefined, e.g. a zero old norm for cosine)."""

    changed_fraction: float
    l2: float
    relative: float | None
    max_abs: float
    cosine: float | None


@dataclass
class ParamChange:
    name: str
    status: str  # "added", "removed", "modified"
    old: ParamInfo | None
    new: ParamInfo | None
    numbers: Numbers | None = None

    @property
    def shape_changed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.shape != self.new.shape

    @property
    def encoded(self) -> bool:
        """Quantized blocks on either side: bytes, not values, so no change numbers."""
        return any(info is not None and info.encoded for info in (self.old, self.new))

    @property
    def dtype_changed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.dtype != self.new.dtype

    def to_json(self) -> dict:
        out = {"name": self.name, "status": self.status}
        for side in ("old", "new"):
            info = getattr(self, side)
            out[side] = (
                None
                if info is None
                else {k: v for k, v in asdict(info).items() if k != "hash"}
                | {
                    "shape": list(info.shape),
                    "hash": info.hash,
                }
            )
        out["numbers"] = None if self.numbers is None else _finite(asdict(self.numbers))
        return out


@dataclass
class ModelDiff:
    path: str
    old_format: str | None
    new_format: str | None
    total: int  # parameters on the new side (or old side when the file was deleted)
    unchanged: int
    changes: list[ParamChange] = field(default_factory=list)
    stored_bytes: int | None = 0  # bytes of pieces new in the new side; None if it is not stored
    stored_scope: str = "file"  # "change": new to the old side's whole tree; "file": to this file's
    unstored: str | None = None  # what the new side is when git-theta did not store it
    old_path: str | None = None  # where the file was on the old side, when git saw a rename

    @property
    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "modified": 0}
        for c in self.changes:
            out[c.status] += 1
        return out


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def _as_compute(t: RawTensor) -> np.ndarray:
    arr = t.numpy().reshape(-1)
    if t.dtype == "complex32":  # raw words: real and imaginary float16 halves
        return arr.view(np.float16).astype(np.float32).view(np.complex64).astype(np.complex128)
    kind = "c" if arr.dtype.kind == "c" else "f"
    return arr.astype(np.complex128 if kind == "c" else np.float64)


def numbers(old: RawTensor, new: RawTensor) -> Numbers:
    """Change statistics of two same-shaped tensors, in float64 (complex128 for complex)."""
    same_dtype = old.dtype == new.dtype
    bits_old = (
        np.frombuffer(old.data, dtype=f"u{_itemsize(old)}")
        if same_dtype and _itemsize(old) in (1, 2, 4, 8)
        else None
    )
    bits_new = np.frombuffer(new.data, dtype=f"u{_itemsize(new)}") if bits_old is not None else None
    changed = 0
    sq_diff = sq_old = sq_new = dot = 0.0
    max_abs = 0.0
    count = numel(old.shape)
    for start in range(0, count, _BLOCK):
        stop = min(count, start + _BLOCK)
        a = _as_compute(RawTensor(old.dtype, (stop - start,), _slice(old, start, stop)))
        b = _as_compute(RawTensor(new.dtype, (stop - start,), _slice(new, start, stop)))
        if bits_old is not None:
            changed += int(np.count_nonzero(bits_old[start:stop] != bits_new[start:stop]))
        else:
            changed += int(np.count_nonzero((a != b) & ~(np.isnan(a) & np.isnan(b))))
        d = b - a
        sq_diff += float(np.vdot(d, d).real)
        sq_old += float(np.vdot(a, a).real)
        sq_new += float(np.vdot(b, b).real)
        dot += float(np.vdot(a, b).real)
        if d.size:
            max_abs = max(max_abs, float(np.max(np.abs(d))))
    l2, norm_old, norm_new = np.sqrt(sq_diff), np.sqrt(sq_old), np.sqrt(sq_new)
    relative = l2 / norm_old if norm_old > 0 else (0.0 if l2 == 0 else None)
    cosine = dot / (norm_old * norm_new) if norm_old > 0 and norm_new > 0 else None
    return Numbers(changed / count if count else 0.0, float(l2), relative, max_abs, cosine)


def _itemsize(t: RawTensor) -> int:
    from git_theta import dtypes

    return dtypes.get(t.dtype).itemsize


def _slice(t: RawTensor, start: int, stop: int) -> memoryview:
    item = _itemsize(t)
    return t.data[start * item : stop * item]


def compare(
    old: ModelSide, new: ModelSide, with_numbers: bool = True, known: set[str] | None = None
) -> ModelDiff:
    """The diff of two sides; tensors are read only for modified parameters, when asked.

    `known`: the pieces stored before this change (diffs.baseline); without it, stored bytes count
    what is new to this file only."""
    changes: list[ParamChange] = []
    modified: list[str] = []
    unchanged = 0
    for name, info in new.params.items():
        before = old.params.get(name)
        if before is None:
            changes.append(ParamChange(name, "added", None, info))
        elif before.hash == info.hash and before.dtype == info.dtype and before.shape == info.shape:
            unchanged += 1
        else:
            changes.append(ParamChange(name, "modified", before, info))
            modified.append(name)
    for name, info in old.params.items():
        if name not in new.params:
            changes.append(ParamChange(name, "removed", info, None))
    measurable = [c for c in changes if c.status == "modified" and not c.shape_changed and not c.encoded]
    if with_numbers and measurable:
        names = [c.name for c in measurable]
        old.prefetch(names)
        new.prefetch(names)
        results = parallel.ordered_map(lambda c: numbers(old.load(c.name), new.load(c.name)), measurable)
        for change, result in zip(measurable, results):
            change.numbers = result
    scope = "file" if known is None else "change"
    total = len(new.params) or len(old.params)
    stored = (
        None if new.unstored else stored_bytes(new, {p.oid for p in old.params.values()} | (known or set()))
    )
    return ModelDiff(
        new.path or old.path, old.format, new.format, total, unchanged, changes, stored, scope, new.unstored
    )


def stored_bytes(side: ModelSide, known: set[str]) -> int:
    """Bytes of the distinct pieces `side` references that are not in `known`."""
    new = {p.oid: p.size for p in side.params.values() if p.oid not in known}
    return sum(new.values())
