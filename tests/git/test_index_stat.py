"""Patching one index entry's stat: every index version git writes, SHA-256, and the refusals."""

import os
import shutil
import subprocess

import pytest

from git_theta.git import index_stat


def _repo(repo, *init_args):
    if init_args:  # the fixture's repository, made again with other options
        shutil.rmtree(repo.cwd)
        subprocess.run(["git", "init", "-q", *init_args, repo.cwd], env=repo.env, check=True)
    for name in ("a.txt", "b/c.txt", "d.bin"):
        os.makedirs(os.path.dirname(os.path.join(repo.cwd, name)) or repo.cwd, exist_ok=True)
        with open(os.path.join(repo.cwd, name), "w") as f:
            f.write(name * 3)
    repo("add", "-A")
    repo("commit", "-qm", "files")
    return os.path.join(repo.cwd, ".git", "index")


def _rewrite_same_content(repo, name: str) -> os.stat_result:
    """Rewrite the file (new inode and mtime, same bytes) with an mtime older than the index."""
    full = os.path.join(repo.cwd, name)
    data = open(full, "rb").read()
    os.remove(full)
    with open(full, "wb") as f:
        f.write(data)
        f.flush()
        index_stat.backdate(f.fileno(), os.path.join(repo.cwd, ".git", "index"))
    return os.lstat(full)


def _oid(repo, name: str) -> str:
    return repo.out("ls-files", "-s", "--", name).split()[1]


def _debug_ino(repo, name: str) -> int:
    out = repo.out("ls-files", "--debug", "--", name)
    return int(out.split("ino:")[1].split()[0])


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_patch_every_index_version(repo, version):
    index = _repo(repo)
    repo("update-index", "--index-version", version)
    if version == "3":
        with open(os.path.join(repo.cwd, "e.txt"), "w") as f:
            f.write("e")
        repo("add", "-N", "e.txt")  # intent-to-add: an entry with extended flags
    st = _rewrite_same_content(repo, "b/c.txt")
    before = os.stat(index).st_mtime_ns
    assert index_stat.patch(index, "b/c.txt", _oid(repo, "b/c.txt"), st)
    assert os.stat(index).st_mtime_ns == before  # other entries keep their racy verdict
    assert _debug_ino(repo, "b/c.txt") == st.st_ino & 0xFFFFFFFF
    repo("fsck", "--no-dangling")  # git verifies the index checksum on every read
    trace = repo("status", "--porcelain", "--untracked-files=no")
    assert trace.stdout.decode() == (" A e.txt\n" if version == "3" else "")


def test_patch_sha256_repository(repo):
    index = _repo(repo, "--object-format=sha256")
    st = _rewrite_same_content(repo, "a.txt")
    oid = _oid(repo, "a.txt")
    assert len(oid) == 64 and index_stat.patch(index, "a.txt", oid, st)
    assert _debug_ino(repo, "a.txt") == st.st_ino & 0xFFFFFFFF
    assert repo.status() == ""


def test_refusals_leave_the_index_alone(repo):
    index = _repo(repo)
    st = _rewrite_same_content(repo, "a.txt")
    oid = _oid(repo, "a.txt")
    original = open(index, "rb").read()
    assert not index_stat.patch(index, "a.txt", "0" * 40, st)  # entry names another blob
    assert not index_stat.patch(index, "nope.txt", oid, st)  # no such entry
    open(index + ".lock", "w").close()  # git holds the index
    assert not index_stat.patch(index, "a.txt", oid, st)
    os.remove(index + ".lock")
    assert open(index, "rb").read() == original and not os.path.exists(index + ".lock")
    repo("update-index", "--split-index")  # entries live in a shared index: left to git
    assert not index_stat.patch(index, "a.txt", oid, st)
    assert repo.status() == ""
