"""User-facing errors: one clear line naming the file and the fix, never a traceback."""


class ThetaError(Exception):
    """An expected failure whose message is shown to the user as is."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class CheckpointError(ThetaError):
    """A checkpoint that cannot be read: unknown, corrupt, truncated or unsafe."""


class MissingObjectError(ThetaError):
    """An LFS object that is neither local nor fetchable."""
