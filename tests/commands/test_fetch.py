"""`git theta fetch` (commands.fetch) from a remote on this machine: all of a revision, or some paths."""

import os
import subprocess

from git_theta.metadata import Metadata
from git_theta.updates import objects_of
from tests.helpers import lfs_objects, save, small_model


def _needs(repo, path: str) -> set[str]:
    meta = Metadata.loads(repo("cat-file", "blob", f"HEAD:{path}").stdout, path)
    return {oid for entry in meta.params.values() for oid in objects_of(entry)}


def _metadata_only_clone(repo, bare_remote: str, dest: str):
    repo.theta("track", "*.pt")
    save(small_model(0), os.path.join(repo.cwd, "a.pt"))
    save({k: v + 1 for k, v in small_model(1).items()}, os.path.join(repo.cwd, "b.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "two models")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    env = dict(repo.env, GIT_THETA_SKIP_SMUDGE="1")
    subprocess.run(["git", "clone", "-q", bare_remote, dest], env=env, check=True)
    clone = type(repo)(dest, env)
    assert not lfs_objects(dest)
    return clone


def test_include_fetches_only_the_named_checkpoint(repo, bare_remote, tmp_path):
    clone = _metadata_only_clone(repo, bare_remote, str(tmp_path / "clone"))
    a, b = _needs(clone, "a.pt"), _needs(clone, "b.pt")
    assert a and b and not a & b
    out = clone.theta("fetch", "--include", "a.pt").stdout.decode()
    assert out.startswith(f"fetched {len(a)} object(s)")
    assert set(lfs_objects(clone.cwd)) == a
    out = clone.theta("fetch", "origin", "HEAD").stdout.decode()
    assert out.startswith(f"fetched {len(b)} object(s)")  # what was missing: b.pt's
    assert set(lfs_objects(clone.cwd)) == a | b
    assert clone.theta("fetch").stdout.decode().startswith("fetched 0 object(s)")


def test_an_unknown_revision_is_refused_before_fetching(repo, bare_remote, tmp_path):
    clone = _metadata_only_clone(repo, bare_remote, str(tmp_path / "clone"))
    proc = clone.theta("fetch", "origin", "nope", check=False)
    assert proc.returncode == 1 and "unknown revision 'nope'" in proc.stderr.decode()
    assert not lfs_objects(clone.cwd)
