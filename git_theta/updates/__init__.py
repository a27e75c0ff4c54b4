"""Update types: how a parameter's new value is stored relative to what came before (plug-ins)."""

from git_theta.updates.chain import load_entry
from git_theta.updates.chain import objects as objects_of

__all__ = ["load_entry", "objects_of"]
