"""The other files a checkpoint is made of (a TensorFlow shard's `.index`), handed to its format.

A format parses bytes held in memory; a checkpoint split over several files gets the bytes of
its companions through a `Siblings` reader chosen by the caller (the folder the file lies in, or
bytes already in memory), never by opening paths relative to the current directory.
"""

import os
from types import MappingProxyType
from typing import Protocol


class Siblings(Protocol):
    """Bytes of the files beside a checkpoint, by file name; None when there is no such file
    (a plain dict of name -> bytes is one)."""

    def get(self, name: str) -> bytes | None: ...


class FolderSiblings:
    """The files of one folder, read when asked for (the folder a checkpoint file lies in)."""

    def __init__(self, folder: str):
        self.folder = folder

    def get(self, name: str) -> bytes | None:
        """The bytes of `name` in the folder; None when it is missing (or names another folder)."""
        if os.path.basename(name) != name or name in ("", ".", ".."):
            return None
        try:
            with open(os.path.join(self.folder, name), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None


def beside(path: str, root: str | None = None) -> FolderSiblings:
    """The files beside checkpoint `path` (relative to `root` when given, e.g. a repository's top)."""
    full = os.path.join(root, path) if root else path
    return FolderSiblings(os.path.dirname(os.path.abspath(full)))


NO_SIBLINGS: Siblings = MappingProxyType({})  # a single file: nothing beside it is read
