"""A remote on this machine (a path or file:// URL): objects are linked from it, each checked
against its oid or, for a checkout that checks what it rebuilds, by that content check; a corrupt
one is never kept, and the clone says what is corrupt or missing."""

import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests.helpers import lfs_objects


def _model() -> dict:
    rng = np.random.default_rng(0)
    return {f"w{i}": rng.standard_normal((512, 600)).astype(np.float32) for i in range(3)}


def _pushed(repo, bare_remote) -> dict:
    repo.theta("track", "*.safetensors")
    model = _model()
    save_file(model, os.path.join(repo.cwd, "m.safetensors"))
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    return model


def _remote_object(bare_remote: str, oid: str) -> str:
    return os.path.join(bare_remote, "lfs", "objects", oid[:2], oid[2:4], oid)


def test_a_clone_from_a_local_remote_links_its_objects(repo, bare_remote, tmp_path):
    model = _pushed(repo, bare_remote)
    for url in (bare_remote, "file://" + bare_remote):
        clone = str(tmp_path / f"clone-{len(url)}")
        repo("clone", "-q", url, clone, cwd=str(tmp_path))
        got = load_file(os.path.join(clone, "m.safetensors"))
        assert all(np.array_equal(got[k], model[k]) for k in model)
        objects = lfs_objects(clone)
        assert objects and all(
            os.stat(os.path.join(clone, ".git", "lfs", "objects", o[:2], o[2:4], o)).st_ino
            == os.stat(_remote_object(bare_remote, o)).st_ino
            for o in objects
        )
        assert repo.at(clone).status() == ""


@pytest.mark.parametrize("verify", ["once", "always", "0"])
def test_a_corrupt_object_on_a_local_remote_is_not_taken(repo, bare_remote, tmp_path, verify):
    """With content checks (once, always) the object is linked unhashed, fails the checkout's
    check and is deleted; without (0) its hash refuses it before it lands."""
    _pushed(repo, bare_remote)
    big = max(lfs_objects(repo.cwd).items(), key=lambda kv: kv[1])[0]
    path = _remote_object(bare_remote, big)
    os.chmod(path, 0o644)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    os.unlink(path)  # the remote's copy only: the pushing repository's link stays intact
    open(path, "wb").write(bytes(data))
    clone = str(tmp_path / "clone")
    repo.env["GIT_THETA_VERIFY"] = verify
    r = repo("clone", "-q", bare_remote, clone, cwd=str(tmp_path), check=False)
    err = r.stderr.decode()
    assert r.returncode != 0 and "corrupt" in err and big[:12] in err
    assert big not in lfs_objects(clone)  # nothing unverified landed in the store
    assert not any(f.startswith("theta-link") for f in os.listdir(os.path.join(clone, ".git", "lfs", "tmp")))


def test_objects_linked_unhashed_are_checked_through_the_content(repo, bare_remote, tmp_path):
    """An object swapped on the remote for another valid object of the same model (the
    metadata's content hash then does not match) is refused by the checkout's content check."""
    _pushed(repo, bare_remote)
    objects = sorted(lfs_objects(repo.cwd).items(), key=lambda kv: kv[1])
    (small, _), (big, _) = objects[0], objects[-1]
    path = _remote_object(bare_remote, big)
    os.unlink(path)
    with open(_remote_object(bare_remote, small), "rb") as f:
        other = f.read()
    open(path, "wb").write(other)  # a valid object, under the wrong oid
    clone = str(tmp_path / "clone")
    r = repo("clone", "-q", bare_remote, clone, cwd=str(tmp_path), check=False)
    err = r.stderr.decode()
    assert r.returncode != 0 and big[:12] in err and ("corrupt" in err or "does not match" in err)
    assert big not in lfs_objects(clone)


def test_a_push_to_a_repository_on_this_machine_links_its_objects(repo, bare_remote, tmp_path):
    """By name or by path, into a remote that never had LFS objects: each object is linked,
    and a clone from there is whole."""
    model = _pushed(repo, bare_remote)
    for o in lfs_objects(repo.cwd):
        mine = os.path.join(repo.cwd, ".git", "lfs", "objects", o[:2], o[2:4], o)
        assert os.stat(_remote_object(bare_remote, o)).st_ino == os.stat(mine).st_ino
    other = str(tmp_path / "other.git")
    repo("init", "-q", "--bare", other)
    repo("push", "-q", other, "main")  # a path, not a configured remote
    tmp = os.path.join(other, "lfs", "tmp")
    assert sorted(os.listdir(os.path.join(other, "lfs", "objects")))
    assert not os.path.isdir(tmp) or not os.listdir(tmp)  # links land under their own names
    clone = str(tmp_path / "clone")
    repo("clone", "-q", other, clone, cwd=str(tmp_path))
    got = load_file(os.path.join(clone, "m.safetensors"))
    assert all(np.array_equal(got[k], model[k]) for k in model)


def test_an_lfs_url_in_lfsconfig_sends_objects_there_not_to_the_local_remote(repo, bare_remote, tmp_path):
    """git-lfs reads lfs.url from .lfsconfig too: with one there, the local bare remote holds
    only git's data, whichever way the objects go."""
    lfs_home = tmp_path / "lfs-home.git"
    repo("init", "-q", "--bare", str(lfs_home))
    with open(os.path.join(repo.cwd, ".lfsconfig"), "w") as f:
        f.write(f'[lfs]\n\turl = "file://{lfs_home}"\n')
    _pushed(repo, bare_remote)
    assert not os.path.isdir(os.path.join(bare_remote, "lfs", "objects")) or not os.listdir(
        os.path.join(bare_remote, "lfs", "objects")
    )
    assert set(lfs_objects(repo.cwd)) <= {
        name for _, _, files in os.walk(os.path.join(str(lfs_home), "lfs", "objects")) for name in files
    }


def test_an_lfs_url_in_a_committed_lfsconfig_counts_without_the_work_tree_file(repo, bare_remote, tmp_path):
    """git-lfs reads .lfsconfig from the index (then HEAD) when the work tree has none."""
    lfs_home = tmp_path / "lfs-home.git"
    repo("init", "-q", "--bare", str(lfs_home))
    path = os.path.join(repo.cwd, ".lfsconfig")
    with open(path, "w") as f:
        f.write(f'[lfs]\n\turl = "file://{lfs_home}"\n')
    repo.theta("track", "*.safetensors")
    save_file(_model(), os.path.join(repo.cwd, "m.safetensors"))
    repo("add", ".lfsconfig", ".gitattributes", "m.safetensors")
    repo("commit", "-qm", "v1")
    os.remove(path)  # still in the index and HEAD
    repo("remote", "add", "origin", bare_remote)
    repo("push", "-q", "origin", "main")
    assert not os.path.isdir(os.path.join(bare_remote, "lfs", "objects"))
    stored = {
        name for _, _, files in os.walk(os.path.join(str(lfs_home), "lfs", "objects")) for name in files
    }
    assert set(lfs_objects(repo.cwd)) <= stored


@pytest.mark.parametrize("included", [False, True])
def test_a_remote_keeping_its_objects_elsewhere_gets_them_through_git_lfs(
    repo, bare_remote, tmp_path, included
):
    """A remote whose own config sets lfs.storage (directly or through an included file) is not
    linked into: its lfs/objects folder stays empty, and git-lfs puts the objects where it says."""
    storage = tmp_path / "remote-storage"
    setting = f"[lfs]\n\tstorage = {storage}\n"
    with open(os.path.join(bare_remote, "config"), "a") as f:
        if included:
            with open(tmp_path / "more.config", "w") as more:
                more.write(setting)
            f.write(f"[include]\n\tpath = {tmp_path / 'more.config'}\n")
        else:
            f.write(setting)
    _pushed(repo, bare_remote)
    linked = os.path.join(bare_remote, "lfs", "objects")
    assert not os.path.isdir(linked) or not os.listdir(linked)
    stored = {name for _, _, files in os.walk(storage) for name in files}
    assert set(lfs_objects(repo.cwd)) <= stored
