"""The checkpoint format plug-in interface and the in-memory checkpoint it produces."""

import functools
import io
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from git_theta.errors import CheckpointError, ThetaError, shorten
from git_theta.formats.siblings import NO_SIBLINGS, Siblings
from git_theta.tensor import RawTensor, TensorSpec


@dataclass
class Checkpoint:
    """Named tensors in file order plus what the format needs to rebuild the file (`layout`)."""

    tensors: dict[str, RawTensor]
    layout: dict = field(default_factory=dict)


class CheckpointFormat(ABC):
    """Base class of checkpoint format plug-ins (entry point group git_theta.plugins.checkpoints).

    `read` must never execute code from the file; `write` must produce a file that `read` turns
    back into the same tensors and layout (bit for bit), streaming tensors in the given order.
    A checkpoint made of several files reads the others through `siblings`, which the caller
    sets (formats.detect does) to the files beside it (see formats.siblings).
    The Python API (`git_theta.save`, `save_to_git`, `load_from_git`) goes through `new_layout`,
    `layout_fits`, `dumps` and `loads`, whose defaults use `read` and `write` alone.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    siblings: Siblings = NO_SIBLINGS
    new_files: bool = True  # whether `new_layout` can lay out a file that never existed

    def __init_subclass__(cls, **kwargs):
        """Every reader, ours or a plug-in's, reports a malformed file as a CheckpointError."""
        super().__init_subclass__(**kwargs)
        if "read" in cls.__dict__ and not getattr(cls.__dict__["read"], "_guarded", False):
            cls.read = _guarded(cls.__dict__["read"])

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when the first bytes of a file look like this format."""
        return False

    @classmethod
    def claims_path(cls, path: str) -> bool:
        return os.path.splitext(path)[1].lower() in cls.extensions

    def encoded_tensors(self, layout: dict) -> dict[str, str]:
        """Tensors whose bytes encode values rather than hold them (quantized blocks), mapped to
        how diffs show their type and shape (`Q4_K[4096, 4096]`). Diff numbers and arithmetic
        merges leave these alone: only taking a side is meaningful for them."""
        return {}

    def check_specs(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        """Raise CheckpointError when `write` could not write these tensors with this layout.

        Called before tensors that never were a file (`git_theta.save`) are committed, so a
        commit that could not be checked out is refused up front."""
        return None

    @abstractmethod
    def read(self, data: memoryview, path: str) -> Checkpoint:
        """Parse a whole checkpoint held in memory; tensors may be views into `data`."""

    @abstractmethod
    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        """Write the checkpoint to `out`; `tensors` yields the data of `specs`, in that order."""

    def tensor_offsets(self, layout: dict, specs: list[TensorSpec], path: str) -> list[int] | None:
        """Where `write` puts the first byte of each tensor of `specs` (in that order), for a
        writer that writes each tensor's data whole with one `out.write` at an offset known
        before writing; None otherwise. A checkout then decodes each tensor aligned as it will
        lie in the file, and the file is written from the tensors without a copy."""
        return None

    def new_layout(self, tree: Mapping, specs: list[TensorSpec], path: str) -> dict:
        """The layout of a new file holding `specs` (flat names of the nested dict `tree`), for
        tensors that never were a file (`git_theta.save`). Default: what `read` makes of a
        skeleton (the tensors with no elements) that `write` wrote with an empty layout."""
        if not self.new_files:
            raise ThetaError(
                f"cannot save straight to a {self.name} checkpoint; use a .pt, .safetensors, .npz or .msgpack path",
                path,
            )
        empty = [TensorSpec(s.name, s.dtype, (0,)) for s in specs]
        buf = io.BytesIO()
        self.write({}, empty, (RawTensor(s.dtype, (0,), memoryview(b"")) for s in empty), buf, path)
        return self.layout_of(buf.getvalue(), specs, path)

    def layout_of(self, skeleton: bytes, specs: list[TensorSpec], path: str) -> dict:
        """The layout `read` finds in `skeleton` (a file of this format with the structure of
        `specs`, its data left out), refused when it does not hold exactly those tensors."""
        checkpoint = self.read(memoryview(skeleton), path)
        if list(checkpoint.tensors) != [s.name for s in specs]:
            raise ThetaError(f"the {self.name} format cannot hold this state dict's structure", path)
        return checkpoint.layout  # structure only: shapes and data come from the tensors at write time

    def layout_fits(self, layout: dict, specs: list[TensorSpec]) -> bool:
        """Whether a stored file's layout can take these tensors when a new version of them is
        saved (formats whose layout fixes shapes say no when they changed)."""
        return True

    def dumps(self, state: Mapping, tensors: Callable[[], dict[str, RawTensor]], path: str) -> bytes:
        """The bytes of a file of this format holding the state dict `state`, for `save_to_git`;
        `tensors()` gives its tensors as raw bytes by flat name. Default: git-theta's own writer."""
        raw = tensors()
        specs = [TensorSpec(n, t.dtype, tuple(t.shape)) for n, t in raw.items()]
        buf = io.BytesIO()
        self.write(self.new_layout(state, specs, path), specs, raw.values(), buf, path)
        return buf.getvalue()

    def loads(self, data: bytes, path: str) -> Any:
        """The in-memory object `load_from_git` returns for a file of this format. Default: the
        tensors `read` finds, as NumPy arrays (copies) by name."""
        import numpy as np  # on first use, as in tensor.py: metadata-only commands never import it

        return {name: np.array(t.numpy()) for name, t in self.read(memoryview(data), path).tensors.items()}

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        """Refuse (CheckpointError, one line) a layout from metadata that `write` cannot or must
        not write: it comes from a file anyone may commit. Called before any output is written;
        formats check every field their writer emits (this default bounds its nesting only)."""
        from git_theta.formats import layout as checks

        if not isinstance(layout, dict):
            raise checks.fail("not a map", path)
        checks.check_bounded(layout, path)


def skeleton(tree: Mapping, specs: list[TensorSpec], empty: Callable[[TensorSpec], Any]) -> dict:
    """`tree` (nested dicts whose leaves are the tensors of `specs`, named by their keys joined
    with '/') with each tensor replaced by `empty(spec)`: a structure without data to save."""
    by_name = {s.name: s for s in specs}

    def walk(node: Mapping, prefix: str) -> dict:
        return {
            key: (
                walk(value, f"{prefix}{key}/")
                if isinstance(value, Mapping)
                else empty(by_name[f"{prefix}{key}"])
            )
            for key, value in node.items()
        }

    return walk(tree, "")


# what parsing bytes from a file we did not write can raise besides our own errors
_MALFORMED = (
    struct.error,
    ValueError,
    OverflowError,
    IndexError,
    KeyError,
    TypeError,
    EOFError,
    AttributeError,
    RecursionError,
    MemoryError,
)


def _guarded(read):
    @functools.wraps(read)
    def wrapper(self, data, path):
        try:
            return read(self, data, path)
        except CheckpointError:
            raise
        except _MALFORMED as exc:
            detail = shorten(f"{type(exc).__name__}: {exc}", 120)
            raise CheckpointError(
                f"corrupt or truncated {self.name} checkpoint ({detail}); re-save it or restore a good copy",
                path,
            ) from None

    wrapper._guarded = True
    return wrapper
