"""The file layout a checkpoint format needs to write a state dict that was never a file.

The layout holds structure, not data, so it is read from a skeleton: the same nesting with
empty tensors, written by the framework in memory (bytes, not the model) and parsed back.
"""

import io

import numpy as np

from git_theta.errors import ThetaError
from git_theta.formats.detect import by_name
from git_theta.plugins import checkpoints
from git_theta.tensor import RawTensor, TensorSpec


def format_for_path(path: str) -> str:
    """The checkpoint format a new file at `path` gets (by extension; .pt when unknown)."""
    for cls in checkpoints.classes():
        if cls.claims_path(path):
            return cls.name
    return "pytorch"


def _empty(raw: RawTensor, framework: str):
    if framework == "torch":
        import torch

        return torch.empty(0, dtype=getattr(torch, raw.dtype))
    return np.zeros(0, dtype=raw.numpy().dtype)


def _skeleton(tree, tensors: dict[str, RawTensor], framework: str, prefix: str = ""):
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out[key] = (
            _skeleton(value, tensors, framework, name + "/")
            if isinstance(value, dict)
            else _empty(tensors[name], framework)
        )
    return out


def layout_for(fmt_name: str, tree: dict, tensors: dict[str, RawTensor], path: str) -> dict:
    """A layout for `fmt_name` that places `tensors` (flat names of `tree`) in a file."""
    fmt = by_name(fmt_name)
    if hasattr(fmt, "new_layout"):  # formats that build a new file's layout themselves (hdf5)
        return fmt.new_layout([TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()], path)
    if fmt.name == "safetensors":  # flat names ('a/b' for nested dicts) are valid keys
        return {"metadata": None}
    buf = io.BytesIO()
    if fmt.name == "pytorch":
        import torch

        torch.save(_skeleton(tree, tensors, "torch"), buf)
    elif fmt.name == "numpy":
        np.savez(buf, **{k: np.zeros(0, dtype=t.numpy().dtype) for k, t in tensors.items()})
    elif fmt.name == "flax":
        from flax.serialization import msgpack_serialize

        buf.write(msgpack_serialize(_skeleton(tree, tensors, "numpy")))
    else:
        raise ThetaError(
            f"cannot save straight to a {fmt.name} checkpoint; use a .pt, .safetensors, .npz or .msgpack path",
            path,
        )
    checkpoint = fmt.read(memoryview(buf.getvalue()), path)
    if list(checkpoint.tensors) != list(tensors):
        raise ThetaError(f"the {fmt.name} format cannot hold this state dict's structure", path)
    return checkpoint.layout  # structure only: shapes and data come from the tensors at write time


def layout_fits(fmt_name: str, layout: dict, tensors: dict[str, RawTensor]) -> bool:
    """Whether a stored layout can take `tensors`; formats whose layout fixes shapes say so."""
    check = getattr(by_name(fmt_name), "layout_fits", None)
    return check is None or check(layout, [TensorSpec(n, t.dtype, t.shape) for n, t in tensors.items()])
