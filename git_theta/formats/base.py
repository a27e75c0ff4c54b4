"""The checkpoint format plug-in interface and the in-memory checkpoint it produces."""

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

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

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        """True when the first bytes of a file look like this format."""
        return False

    @classmethod
    def claims_path(cls, path: str) -> bool:
        return os.path.splitext(path)[1].lower() in cls.extensions

    @abstractmethod
    def read(self, data: memoryview, path: str) -> Checkpoint:
        """Parse a whole checkpoint held in memory; tensors may be views into `data`."""

    @abstractmethod
    def write(
        self, layout: dict, specs: list[TensorSpec], tensors: Iterable[RawTensor], out: BinaryIO, path: str
    ) -> None:
        """Write the checkpoint to `out`; `tensors` yields the data of `specs`, in that order."""
