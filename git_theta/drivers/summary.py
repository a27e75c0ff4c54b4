"""Per-parameter facts (dtype, shape, content hash) of either a metadata file or a checkpoint."""

import hashlib
import os

from git_theta.formats.detect import detect
from git_theta.metadata import Metadata, is_metadata


def summarize(file_path: str, display_path: str) -> dict[str, tuple[str, tuple, str]]:
    """name -> (dtype, shape, hash); {} for a missing side (/dev/null or empty)."""
    if file_path in ("/dev/null", "") or not os.path.exists(file_path):
        return {}
    with open(file_path, "rb") as f:
        data = f.read()
    if not data:
        return {}
    if is_metadata(data):
        meta = Metadata.loads(data, display_path)
        return {n: (e.dtype, tuple(e.shape), e.hash) for n, e in meta.params.items()}
    checkpoint = detect(display_path, data[:64]).read(memoryview(data), display_path)
    return {
        n: (t.dtype, tuple(t.shape), hashlib.sha256(t.data).hexdigest())
        for n, t in checkpoint.tensors.items()
    }
