"""Side-loaded update data (`git theta add --update-data FILE`), in the original git-theta layout.

FILE is a checkpoint in any supported format whose keys are `<parameter name>/<part>` (or nested
dicts giving the same paths). It may name any subset of the model's parameters; each named
parameter's new value is its value at HEAD combined with the parts. Everything is checked
before anything is stored, and every problem is listed in one error.
"""

import numpy as np

from git_theta import dtypes
from git_theta.errors import ThetaError
from git_theta.formats.detect import detect
from git_theta.formats.siblings import beside
from git_theta.metadata import ParamEntry
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta.updates import chain
from git_theta.updates.delta import DeltaUpdate

INDEX_PARTS = ("indices", "indptr", "shape")
_SHOWN = 8


def _names(items: list[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _cast(part_name: str, t: RawTensor, dtype: str) -> RawTensor:
    """Index parts become int64; value parts the parameter's dtype (the original does the same)."""
    target = "int64" if part_name in INDEX_PARTS else dtype
    if t.dtype == target:
        return t
    return RawTensor.from_numpy(t.numpy().astype(dtypes.get(target).numpy()), target)


def read_side_file(path: str) -> dict[str, RawTensor]:
    """The tensors of a side file, by their `<parameter>/<part>` paths."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ThetaError(f"cannot read update data ({exc.strerror})", path) from None
    fmt = detect(path, data[:64], beside(path))
    return dict(fmt.read(memoryview(data), path).tensors)


def load_side_updates(
    path: str,
    update: DeltaUpdate,
    model: dict[str, RawTensor],
    head: dict[str, ParamEntry],
    store: LfsStore,
) -> dict[str, tuple[RawTensor, dict[str, RawTensor]]]:
    """name -> (new value, parts) for every parameter the side file names; refuses bad files whole."""
    grouped: dict[str, dict[str, RawTensor]] = {}
    stray: list[str] = []
    for key, tensor in read_side_file(path).items():
        param, sep, part = key.rpartition("/")
        if sep and part in update.side_parts:
            grouped.setdefault(param, {})[part] = tensor
        else:
            stray.append(key)
    problems = []
    if stray:
        parts = "|".join(update.side_parts)
        problems.append(f"keys not of the form <parameter>/<{parts}>: {_names(stray)}")
    if not grouped and not stray:
        problems.append("it holds no tensors")
    absent = sorted(p for p in grouped if p not in model)
    if absent:
        problems.append(f"parameters the model lacks: {_names(absent)}")
    no_base = sorted(p for p in grouped if p in model and p not in head)
    if no_base:
        problems.append(f"parameters with no committed value to update: {_names(no_base)}")
    incomplete, misfit = [], []
    for param, parts in sorted(grouped.items()):
        missing = [p for p in update.side_parts if p not in parts]
        if missing:
            incomplete.append(f"{param} (no {', '.join(missing)})")
        elif param in head:
            entry = head[param]
            try:
                cast = {k: _cast(k, v, entry.dtype) for k, v in parts.items()}
            except (ValueError, TypeError, KeyError) as exc:
                misfit.append(f"{param}: {exc}")
                continue
            grouped[param] = cast
            why = update.check_side(cast, entry.dtype, tuple(entry.shape))
            if why:
                misfit.append(f"{param}: {why}")
    if incomplete:
        problems.append(f"incomplete updates: {_names(incomplete)}")
    if misfit:
        problems.append(f"parts of the wrong shape: {'; '.join(misfit[:_SHOWN])}")
    if problems:
        raise ThetaError(f"update data refused, nothing staged: {'; '.join(problems)}", path)

    out = {}
    for param, parts in grouped.items():
        entry = head[param]
        if not all(store.has(oid) for oid in chain.objects(entry, param)):
            raise ThetaError(
                f"the committed value of {param!r} is not in the local store; run `git theta fetch` first",
                path,
            )
        old = chain.load_entry(entry, store, param)
        shape_entry = ParamEntry(entry.dtype, tuple(entry.shape), "", "0" * 64, 0, update.name)
        with np.errstate(all="ignore"):
            new = update.apply(old, parts, shape_entry, param)
        out[param] = (new, parts)
    return out
