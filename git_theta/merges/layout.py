"""Three-way merge of a checkpoint's non-tensor structure (its metadata `layout`), like tensors.

A layout is JSON: the format's wrapper around the tensors (a torch.save archive's top folder,
its pickled object tree, a safetensors header, ...). Two branches can change it without any
tensor conflicting: `torch.save` names the archive's top folder after the file, so a model saved
as `step500.pt` and copied to `model.pt` differs in layout from one saved as `model.pt`. The
merge goes piece by piece: what one side changed wins; maps merge key by key; lists of names
(the keys of a state dict) merge as ordered sets, so parameters added on both sides all stay;
what both changed differently takes ours, unless the piece says which tensors exist (or their
shapes): that is a real conflict, left for the user.
"""

from dataclasses import dataclass, field

_ABSENT = object()
_TENSOR_KEYS = ("tensor", "shape")  # a leaf naming a tensor, or recording a shape
_TENSOR_KEY_SUFFIX = "_of_tensors"  # a compact list of tensor leaves (state dicts)


@dataclass
class LayoutMerge:
    """The merged layout, the pieces both sides changed differently where ours was taken, and
    the pieces that could not be merged (they decide which tensors exist or their shapes)."""

    layout: dict
    took_ours: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def merge_layouts(base: dict | None, ours: dict, theirs: dict, names: set[str]) -> LayoutMerge:
    """Merge three layouts; `names` are the parameter names of all three versions."""
    result = LayoutMerge({})
    merged = _merge(base if base is not None else _ABSENT, ours, theirs, "", names, result)
    result.layout = merged if isinstance(merged, dict) else ours
    return result


def _merge(base, ours, theirs, where: str, names: set[str], result: LayoutMerge):
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    if isinstance(ours, dict) and isinstance(theirs, dict) and (isinstance(base, dict) or base is _ABSENT):
        base_map = base if isinstance(base, dict) else {}
        out = {}
        for key in list(ours) + [k for k in theirs if k not in ours]:
            value = _merge(
                base_map.get(key, _ABSENT),
                ours.get(key, _ABSENT),
                theirs.get(key, _ABSENT),
                f"{where}/{key}",
                names,
                result,
            )
            if value is not _ABSENT:
                out[key] = value
        return out
    if all(_name_list(v) for v in (ours, theirs)) and (base is _ABSENT or _name_list(base)):
        base_list = [] if base is _ABSENT else base
        dropped = {n for n in base_list if n not in ours or n not in theirs}
        return [n for n in ours if n not in dropped] + [
            n for n in theirs if n not in ours and n not in base_list
        ]
    piece = where or "/"
    if any(_about_tensors(v, names) for v in (base, ours, theirs)):
        result.conflicts.append(piece)
    else:
        result.took_ours.append(piece)
    return ours


def _name_list(value) -> bool:
    """A list of distinct strings: the keys of a mapping, merged as an ordered set."""
    return (
        isinstance(value, list) and all(isinstance(v, str) for v in value) and len(set(value)) == len(value)
    )


def _about_tensors(value, names: set[str]) -> bool:
    """Whether a piece of layout names tensors or records their shapes."""
    if isinstance(value, str):
        return value in names
    if isinstance(value, dict):
        return any(
            key in _TENSOR_KEYS or str(key).endswith(_TENSOR_KEY_SUFFIX) or _about_tensors(key, names)
            for key in value
        ) or any(_about_tensors(v, names) for v in value.values())
    if isinstance(value, list):
        return any(_about_tensors(v, names) for v in value)
    return False
