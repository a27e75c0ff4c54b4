"""Python API: commit a state dict and load one back without the working-tree round trip.

The checkpoint type's format turns the in-memory object into file bytes and back
(`CheckpointFormat.dumps` / `loads`), so any installed format works here.
"""

import io
import os

from git_theta.api.frameworks import flatten, to_raw
from git_theta.api.paths import repo_path
from git_theta.errors import ThetaError
from git_theta.filter.checkout import checkout_models
from git_theta.formats.detect import by_name
from git_theta.git import attributes, repo


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

    def tensors() -> dict:  # only formats written by git-theta's own writer need raw tensors
        return {name: to_raw(value, name) for name, value in flatten(state_dict).items()}

    data = by_name(checkpoint_type).dumps(state_dict, tensors, rel)
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
    return by_name(checkpoint_type).loads(buf.getvalue(), rel)
