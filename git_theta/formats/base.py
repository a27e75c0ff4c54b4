"""The checkpoint format plug-in interface and the in-memory checkpoint it produces."""

import functools
import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from git_theta.errors import CheckpointError, shorten
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
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()

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

    def check_layout(self, layout: dict, specs: list[TensorSpec], path: str) -> None:
        """Refuse (CheckpointError, one line) a layout from metadata that `write` cannot or must
        not write: it comes from a file anyone may commit. Called before any output is written;
        formats check every field their writer emits (this default bounds its nesting only)."""
        from git_theta.formats import layout as checks

        if not isinstance(layout, dict):
            raise checks.fail("not a map", path)
        checks.check_bounded(layout, path)


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
