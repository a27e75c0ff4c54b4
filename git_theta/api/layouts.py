"""The checkpoint format and file layout a state dict that was never a file is saved with.

What a format needs to lay out a new file is the format's own (`CheckpointFormat.new_layout`,
`layout_fits`): nothing here depends on which format it is, so plug-in formats work too.
"""

from git_theta.formats.detect import by_name
from git_theta.plugins import checkpoints
from git_theta.tensor import RawTensor, TensorSpec


def format_for_path(path: str) -> str:
    """The checkpoint format a new file at `path` gets (by extension; .pt when unknown)."""
    for cls in checkpoints.classes():
        if cls.claims_path(path):
            return cls.name
    return "pytorch"


def specs_of(tensors: dict[str, RawTensor]) -> list[TensorSpec]:
    """The specs (name, dtype, shape) of flat raw tensors, in their order."""
    return [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()]


def layout_for(fmt_name: str, tree: dict, tensors: dict[str, RawTensor], path: str) -> dict:
    """A layout for `fmt_name` that places `tensors` (flat names of `tree`) in a file."""
    return by_name(fmt_name).new_layout(tree, specs_of(tensors), path)


def layout_fits(fmt_name: str, layout: dict, tensors: dict[str, RawTensor]) -> bool:
    """Whether a stored layout can take `tensors`; formats whose layout fixes shapes say so."""
    return by_name(fmt_name).layout_fits(layout, specs_of(tensors))
