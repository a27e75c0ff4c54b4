"""The objects an update chain reads, listed without importing the update types' modules."""

import subprocess
import sys

import pytest

from git_theta import plugins
from git_theta.errors import ThetaError
from git_theta.metadata import ParamEntry
from git_theta.updates import chain
from git_theta.updates.base import Update


def test_no_built_in_update_type_has_objects_of_its_own_kind():
    """chain.objects takes a built-in step's objects to be its entry's: true while none overrides."""
    for name in plugins.updates.builtins:
        assert plugins.updates.get(name).own_objects is Update.own_objects, name


def test_a_chain_lists_every_step_and_imports_no_codec():
    code = """
import sys
from git_theta.metadata import ParamEntry
from git_theta.updates import chain
base = ParamEntry("float32", (4,), "h0", "a" * 64, 10, "dense", "c")
step = ParamEntry("float32", (4,), "h1", "b" * 64, 3, "sparse", "c", {"base": base.to_json()})
print(sorted(chain.objects(step, "w").items()))
print("git_theta.codec" in sys.modules, "numpy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"[('{'a' * 64}', 10), ('{'b' * 64}', 3)]", "False False"]


def test_an_unknown_update_type_is_still_refused():
    entry = ParamEntry("float32", (4,), "h", "c" * 64, 1, "no-such-type", "c")
    with pytest.raises(ThetaError, match="unknown"):
        chain.objects(entry, "w")
