"""`git theta ls-files` (git_theta.git.tracking): tracked checkpoints in the index, by root-relative path."""

import os

from tests.helpers import save, small_model


def test_lists_staged_tracked_checkpoints_only_from_any_folder(repo):
    repo.theta("track", "*.pt")
    os.makedirs(os.path.join(repo.cwd, "deep", "er"))
    save(small_model(0), os.path.join(repo.cwd, "deep", "er", "a.pt"))
    save(small_model(1), os.path.join(repo.cwd, "b.pt"))
    with open(os.path.join(repo.cwd, "notes.txt"), "w") as f:
        f.write("not a model\n")
    repo("add", "deep", "notes.txt")  # b.pt is tracked by pattern but not in the index yet
    here = repo.theta("ls-files").stdout.decode().splitlines()
    below = repo.theta("ls-files", cwd=os.path.join(repo.cwd, "deep", "er")).stdout.decode().splitlines()
    assert here == below == ["deep/er/a.pt"]
    repo("add", "b.pt")
    assert repo.theta("ls-files").stdout.decode().splitlines() == ["b.pt", "deep/er/a.pt"]


def test_an_empty_repository_lists_nothing(repo):
    proc = repo.theta("ls-files")
    assert proc.returncode == 0 and proc.stdout == b""
