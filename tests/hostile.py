"""Crafting hostile commits as an attacker would: plain git plumbing, no git-theta code.

An attacker edits a model's metadata (or stores crafted LFS objects) and commits it with
`git hash-object -w` and `git update-index --cacheinfo`; these helpers do the same.
"""

import hashlib
import json
import os


def metadata_at(repo, path: str = "model.pt", rev: str = "HEAD") -> dict:
    """The metadata committed for `path` (cat-file runs no filter) as a version 1 document, the
    nested form an attacker edits most easily and that git-theta still reads."""
    from tests.helpers import metadata_doc

    return metadata_doc(repo, path, rev)


def commit_metadata(repo, doc: dict, path: str = "model.pt", message: str = "crafted") -> str:
    """Commit `doc` as the blob of `path` without any filter; returns the commit sha."""
    blob = repo("hash-object", "-w", "--no-filters", "--stdin", input=json.dumps(doc, indent=1).encode())
    repo("update-index", "--cacheinfo", f"100644,{blob.stdout.decode().strip()},{path}")
    repo("commit", "-qm", message)
    return repo.out("rev-parse", "HEAD").strip()


def put_object(repo, data: bytes) -> tuple[str, int]:
    """Store bytes as an LFS object in the repository's local store, as git-lfs lays it out."""
    oid = hashlib.sha256(data).hexdigest()
    folder = os.path.join(repo.cwd, ".git", "lfs", "objects", oid[:2], oid[2:4])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, oid), "wb") as f:
        f.write(data)
    return oid, len(data)


def checkout_again(repo, path: str = "model.pt"):
    """Delete the working file and check it out from the index (the smudge filter runs)."""
    full = os.path.join(repo.cwd, path)
    if os.path.exists(full):
        os.remove(full)
    return repo("checkout", "--", path, check=False)


def one_line_error(proc) -> str:
    """The stderr of a refused command, asserted to be short lines and no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode != 0, err
    assert err, f"exit {proc.returncode} with nothing on stderr"
    assert "Traceback" not in err, err
    assert all(len(line) <= 700 for line in err.splitlines()), err
    return err
