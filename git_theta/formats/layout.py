"""Checks of a metadata file's layout against what a format's writer can emit, before it writes.

The layout comes from a metadata file that a commit from anyone may carry: every field that
reaches a writer is checked here (kinds of nodes, names from allow-lists, no control characters,
bounded nesting, tensor leaves naming exactly the stored tensors), so a crafted layout is refused
in one line instead of being written into a file (a pickle opcode, a zip member name).
"""

import base64
import binascii
import re

from git_theta.errors import CheckpointError, shorten

MAX_DEPTH = 100  # nesting of a layout tree; real checkpoints nest a handful of levels
MAX_NODES = 5_000_000  # nodes of a layout tree
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


class LayoutError(CheckpointError):
    """A layout that the format's writer cannot (or must not) write."""


def fail(what: str, path: str) -> "LayoutError":
    """The one-line refusal of a malformed layout, naming the file and the fix."""
    return LayoutError(
        f"the checkpoint layout in its metadata is malformed ({shorten(what, 160)}); "
        "restore the file from a good commit (`git checkout GOOD -- FILE`)",
        path,
    )


def check_plain_name(value, what: str, path: str) -> str:
    """A name written as text into a file (zip member, pickle GLOBAL): letters, digits, `_.-`."""
    if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value) or ".." in value:
        raise fail(f"{what} {shorten(value)} is not a plain name", path)
    return value


def check_text(value, what: str, path: str, limit: int = 1 << 20) -> str:
    """A string without control characters, of bounded length."""
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise fail(f"{what} {shorten(value)} is not a plain string", path)
    return value


def check_float_hex(value, what: str, path: str) -> None:
    try:
        float.fromhex(value)
    except (TypeError, ValueError, OverflowError):
        raise fail(f"{what} {shorten(value)} is not a hex float", path) from None


def check_base64(value, what: str, path: str) -> None:
    try:
        base64.b64decode(value, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise fail(f"{what} is not base64", path) from None


def check_bounded(obj, path: str, depth: int = MAX_DEPTH, nodes: int = MAX_NODES) -> None:
    """Nesting and size of any JSON value, walked without recursion (no RecursionError)."""
    stack = [(obj, 0)]
    seen = 0
    while stack:
        node, level = stack.pop()
        seen += 1
        if level > depth or seen > nodes:
            raise fail("nested too deeply or too large to be real", path)
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)


def check_leaves(found: list[str], names: list[str], path: str, ordered: bool) -> None:
    """The tensor leaves a layout names are exactly the stored tensors, each once (and in their
    order when the writer takes the tensors in leaf order)."""
    if len(set(found)) != len(found):
        raise fail("a tensor is named twice", path)
    missing = [n for n in found if n not in set(names)]
    if missing:
        raise fail(f"it names tensors the metadata does not store: {', '.join(missing[:3])}", path)
    if len(found) != len(names) or (ordered and found != names):
        raise fail("its tensors are not the stored tensors" + (" in order" if ordered else ""), path)
