"""The content identity an entry records: the sha256 of a tensor's raw bytes."""

import hashlib

from git_theta.tensor import RawTensor


def tensor_hash(tensor: RawTensor) -> str:
    """sha256 of the tensor's raw bytes: the identity an entry records."""
    return hashlib.sha256(tensor.data).hexdigest()
