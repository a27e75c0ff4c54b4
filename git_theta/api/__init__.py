"""The Python API: commit and load model versions without the working-tree round trip."""

from git_theta.api.compat import load_from_git, save_to_git
from git_theta.api.history import ModelVersion, diff, log
from git_theta.api.load import LazyStateDict, load
from git_theta.api.save import SaveHandle, save, wait_for_saves

__all__ = [
    "save",
    "load",
    "log",
    "diff",
    "SaveHandle",
    "LazyStateDict",
    "ModelVersion",
    "wait_for_saves",
    "save_to_git",
    "load_from_git",
]
