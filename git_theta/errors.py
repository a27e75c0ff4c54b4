"""User-facing errors: one clear line naming the file and the fix, never a traceback."""

MAX_MESSAGE = 600  # characters: a value pasted into a message must not flood the terminal


def shorten(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: for values from files we did not write."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ThetaError(Exception):
    """An expected failure whose message is shown to the user as is (one line, bounded length)."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        text = (f"{path}: {message}" if path else message).replace("\n", " ")
        if len(text) > MAX_MESSAGE:  # keep the start (what) and the end (the fix)
            text = text[: MAX_MESSAGE // 2] + " ... " + text[-MAX_MESSAGE // 2 :]
        super().__init__(text)


class CheckpointError(ThetaError):
    """A checkpoint that cannot be read: unknown, corrupt, truncated or unsafe."""


class MissingObjectError(ThetaError):
    """An LFS object that is neither local nor fetchable."""
