"""Choose the checkpoint format of a file: setting, attribute, magic bytes, then file name."""

import subprocess

from git_theta import config, plugins
from git_theta.errors import CheckpointError, ThetaError
from git_theta.formats.base import CheckpointFormat
from git_theta.formats.siblings import Siblings


def by_name(name: str, siblings: Siblings | None = None) -> CheckpointFormat:
    """The format registered under `name` (aliases such as `pickled-dict` included), reading
    the files beside a checkpoint (when it spans several) from `siblings`."""
    return _made(plugins.checkpoints.get(name), siblings)


def _made(cls: type[CheckpointFormat], siblings: Siblings | None) -> CheckpointFormat:
    fmt = cls()
    if siblings is not None:
        fmt.siblings = siblings
    return fmt


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


def detect(path: str, head: bytes, siblings: Siblings | None = None) -> CheckpointFormat:
    """The format for `path` whose first bytes are `head`, reading the files beside it (for a
    checkpoint of several files) from `siblings`; a clear error when none fits.

    Order: GIT_THETA_CHECKPOINT_TYPE (or theta.checkpointType), the path's `theta-format`
    attribute, the file's magic bytes (the name breaks ties), then the file name.
    """
    forced = config.get("checkpoint_type") or attribute(path)
    if forced:
        return by_name(forced, siblings)
    classes = plugins.checkpoints.classes()
    sniffed = [cls for cls in classes if cls.sniff(head)]
    for cls in sniffed:  # several formats share a container (zip): the file name breaks the tie
        if cls.claims_path(path):
            return _made(cls, siblings)
    if sniffed:
        return _made(sniffed[0], siblings)
    for cls in classes:
        if cls.claims_path(path):
            return _made(cls, siblings)
    raise CheckpointError(
        "not a recognized checkpoint (known types: "
        + ", ".join(c.name for c in classes)
        + "); set GIT_THETA_CHECKPOINT_TYPE, or untrack it with `git theta untrack`",
        path,
    )
