"""`git theta fsck REV...` (commands.fsck): the tensors of the commits the revisions select (as
`git log REV...` does), not of every ref."""

import os

from tests.helpers import commit_tracked_model, lfs_objects, save, small_model


def _damage(repo, oids) -> None:
    root = os.path.join(repo.cwd, ".git", "lfs", "objects")
    for oid in oids:
        path = os.path.join(root, oid[:2], oid[2:4], oid)
        os.chmod(path, 0o644)
        with open(path, "r+b") as f:
            f.seek(3)
            f.write(b"\xff\x00\xff")


def test_damage_only_an_older_commit_reads_is_reported_only_where_it_is_selected(repo):
    commit_tracked_model(repo, small_model(0), message="v1")
    first = set(lfs_objects(repo.cwd))
    save({k: v + 1 for k, v in small_model(5).items()}, os.path.join(repo.cwd, "model.pt"))
    repo.theta("add", "--update-type", "dense", "model.pt")  # nothing of v2 builds on v1
    repo("commit", "-qm", "v2")
    _damage(repo, first - (set(lfs_objects(repo.cwd)) - first))
    last = repo.theta("fsck", "--no-fetch", "HEAD~1..HEAD")
    assert last.returncode == 0 and "no problem(s)" in last.stdout.decode()
    commit = repo.out("rev-parse", "HEAD~1").strip()[:10]
    for revs in (["HEAD"], ["HEAD~1"], []):  # HEAD reaches v1; no revision: every ref
        proc = repo.theta("fsck", "--no-fetch", *revs, check=False)
        err = proc.stderr.decode()
        assert proc.returncode == 1 and f"model.pt @ {commit}: parameter" in err and "corrupt" in err
        assert f"@ {repo.out('rev-parse', 'HEAD').strip()[:10]}" not in err


def test_an_unknown_revision_is_a_one_line_error(repo):
    commit_tracked_model(repo, small_model(0))
    proc = repo.theta("fsck", "--no-fetch", "no-such-branch", check=False)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and err.startswith("git-theta: error:") and len(err.splitlines()) == 1
