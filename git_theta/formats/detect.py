"""Choose the checkpoint format of a file: setting first, then magic bytes, then file name."""

from git_theta import config, plugins
from git_theta.errors import CheckpointError
from git_theta.formats.base import CheckpointFormat


def by_name(name: str) -> CheckpointFormat:
    """The format registered under `name` (aliases such as `pickled-dict` included)."""
    return plugins.checkpoints.get(name)()


def detect(path: str, head: bytes) -> CheckpointFormat:
    """The format for `path` whose first bytes are `head`; a clear error when none fits."""
    forced = config.get("checkpoint_type")
    if forced:
        return by_name(forced)
    classes = plugins.checkpoints.classes()
    for cls in classes:
        if cls.sniff(head):
            return cls()
    for cls in classes:
        if cls.claims_path(path):
            return cls()
    raise CheckpointError(
        "not a recognized checkpoint (known types: "
        + ", ".join(c.name for c in classes)
        + "); set GIT_THETA_CHECKPOINT_TYPE, or untrack it with `git theta untrack`",
        path,
    )
