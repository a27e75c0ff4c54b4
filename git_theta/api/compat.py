"""Python API: commit a state dict and load one back without the working-tree round trip."""

import io
import os

from git_theta.api.paths import repo_path
from git_theta.errors import ThetaError
from git_theta.filter.checkout import checkout_models
from git_theta.git import attributes, repo


def _serialize(state_dict, checkpoint_type: str) -> bytes:
    if checkpoint_type in ("safetensors", "safetensors-checkpoint"):
        from safetensors.torch import save

        return save({k: v.contiguous() for k, v in state_dict.items()})
    import torch

    buf = io.BytesIO()
    torch.save(state_dict, buf)
    return buf.getvalue()


def _deserialize(data: bytes, checkpoint_type: str):
    if checkpoint_type in ("safetensors", "safetensors-checkpoint"):
        from safetensors.torch import load

        return load(data)
    if checkpoint_type in ("numpy", "npy", "npz"):
        import numpy as np

        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        return dict(loaded) if hasattr(loaded, "files") else loaded
    if checkpoint_type in ("flax", "flax-checkpoint"):
        try:
            from flax.serialization import msgpack_restore
        except ImportError:
            raise ThetaError("loading a Flax checkpoint needs flax: pip install 'git-theta[flax]'") from None
        return msgpack_restore(data)
    if checkpoint_type not in ("pytorch", "pickled-dict", "torch"):
        raise ThetaError(
            f"load_from_git cannot load {checkpoint_type!r} checkpoints into memory; use checkout=True"
        )
    try:
        import torch
    except ImportError:
        raise ThetaError(
            "loading a PyTorch checkpoint needs torch: pip install 'git-theta[pytorch]'"
        ) from None
    return torch.load(io.BytesIO(data), weights_only=True)


def _repo_path(path: str) -> tuple[str, str]:
    """(repository top, relative path) of a path given relative to the current directory."""
    full = os.path.abspath(path)
    return repo_path(full, os.path.dirname(full) or ".")


def save_to_git(
    state_dict, path: str, commit_msg: str, tag=None, checkpoint_type: str = "pytorch", checkout=False
):
    """Store `state_dict` as `path`, commit it (and tag it); returns the GitPython commit.

    The checkpoint is cleaned in memory and staged by plumbing, so nothing is written to the
    working tree unless `checkout` is true (then the file is written too and `git status` is clean).
    """
    import git

    from git_theta.filter.clean import clean
    from git_theta.git.tracking import track_pattern

    top, rel = _repo_path(path)
    if not attributes.tracked_paths([rel], top):
        track_pattern(top, attributes.escape_pattern(rel))
    data = _serialize(state_dict, checkpoint_type)
    old = os.getcwd()
    os.chdir(top)
    try:
        meta = clean(data, rel, cwd=top)
    finally:
        os.chdir(old)
    blob = repo.run(["hash-object", "-w", "--stdin"], cwd=top, input=meta).decode().strip()
    repo.run(["update-index", "--add", "--cacheinfo", f"100644,{blob},{rel}"], cwd=top)
    if checkout:
        repo.run(["checkout", "--", rel], cwd=top)
        checkout_models([rel], cwd=top)  # a clone made without the filter got the metadata
    repo.run(["commit", "-m", commit_msg], cwd=top)
    if tag:
        repo.run(["tag", tag], cwd=top)
    return git.Repo(top).head.commit


def load_from_git(sha_or_tag: str, path: str, checkpoint_type: str = "pytorch", checkout=False):
    """The state dict stored at `path` in `sha_or_tag`, read from the object store.

    With `checkout` the working-tree file is also set to that version (`git checkout REV -- PATH`).
    """
    from git_theta.filter.smudge import smudge

    top, rel = _repo_path(path)
    meta = repo.read_blob(f"{sha_or_tag}:{rel}", cwd=top)
    if meta is None:
        raise ThetaError(f"{rel}: not found in {sha_or_tag}")
    buf = io.BytesIO()
    smudge(meta, rel, buf, cwd=top)
    if checkout:
        repo.run(["checkout", sha_or_tag, "--", rel], cwd=top)
        checkout_models([rel], cwd=top)  # a clone made without the filter got the metadata
    return _deserialize(buf.getvalue(), checkpoint_type)
