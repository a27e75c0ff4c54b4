"""Choose the checkpoint format of a file: setting, attribute, magic bytes, then file name."""

import subprocess

from git_theta import config, plugins
from git_theta.errors import CheckpointError, ThetaError
from git_theta.formats.base import CheckpointFormat


def by_name(name: str) -> CheckpointFormat:
    """The format registered under `name` (aliases such as `pickled-dict` included)."""
    return plugins.checkpoints.get(name)()


def encoded_tensors(fmt_name: str | None, layout: dict) -> dict[str, str]:
    """The quantized (encoded) tensors of a stored checkpoint, by its format; none when the
    format is not installed here or its layout is not what it expects."""
    try:
        return by_name(fmt_name).encoded_tensors(layout) if fmt_name else {}
    except (ThetaError, LookupError, TypeError, ValueError):
        return {}


def attribute(path: str) -> str | None:
    """The `theta-format` git attribute of `path` (set in .gitattributes), if any."""
    proc = subprocess.run(["git", "check-attr", "theta-format", "--", path], capture_output=True)
    if proc.returncode != 0:
        return None
    value = proc.stdout.decode().strip().rpartition(": ")[2]
    return None if value in ("unspecified", "unset", "set", "") else value


def detect(path: str, head: bytes) -> CheckpointFormat:
    """The format for `path` whose first bytes are `head`; a clear error when none fits.

    Order: GIT_THETA_CHECKPOINT_TYPE (or theta.checkpointType), the path's `theta-format`
    attribute, the file's magic bytes (the name breaks ties), then the file name.
    """
    forced = config.get("checkpoint_type") or attribute(path)
    if forced:
        return by_name(forced)
    classes = plugins.checkpoints.classes()
    sniffed = [cls for cls in classes if cls.sniff(head)]
    for cls in sniffed:  # several formats share a container (zip): the file name breaks the tie
        if cls.claims_path(path):
            return cls()
    if sniffed:
        return sniffed[0]()
    for cls in classes:
        if cls.claims_path(path):
            return cls()
    raise CheckpointError(
        "not a recognized checkpoint (known types: "
        + ", ".join(c.name for c in classes)
        + "); set GIT_THETA_CHECKPOINT_TYPE, or untrack it with `git theta untrack`",
        path,
    )
