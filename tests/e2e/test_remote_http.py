"""End to end against a real HTTP Git LFS server on 127.0.0.1 (giftless)."""

import os
import subprocess

from git_theta.metadata import Metadata
from git_theta.updates import objects_of
from tests.helpers import assert_same_state, lfs_objects, load, save, small_model


def setup_repo(repo, bare_remote, server):
    """Git data in a bare remote, tensors on the HTTP LFS server (lfs.url via .lfsconfig)."""
    repo.theta("track", "model.pt")
    with open(os.path.join(repo.cwd, ".lfsconfig"), "w") as f:
        f.write(f'[lfs]\n\turl = "{server.url()}"\n')
    repo("remote", "add", "origin", bare_remote)


def test_push_and_clone_through_http_server(repo, bare_remote, lfs_server, tmp_path):
    setup_repo(repo, bare_remote, lfs_server)
    path = os.path.join(repo.cwd, "model.pt")
    v1 = small_model(0, width=64)
    save(v1, path)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    repo("push", "-q", "origin", "main")
    assert set(lfs_server.objects()) == set(lfs_objects(repo.cwd))
    assert (
        not os.listdir(os.path.join(bare_remote, "lfs", "objects"))
        if os.path.isdir(os.path.join(bare_remote, "lfs", "objects"))
        else True
    )

    # second commit: only the changed tensor's object is uploaded
    before = lfs_server.stats()["uploaded"]
    have = lfs_objects(repo.cwd)
    v2 = type(v1)(v1)
    v2["layers.1.weight"] = v1["layers.1.weight"] * 2
    save(v2, path)
    repo("commit", "-qam", "v2")
    new = {o: s for o, s in lfs_objects(repo.cwd).items() if o not in have}
    repo("push", "-q", "origin", "main")
    assert lfs_server.stats()["uploaded"] - before == sum(new.values())

    # clone + checkout of the newest commit downloads only that commit's tensors
    before = lfs_server.stats()["downloaded"]
    clone = str(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=repo.env, check=True)
    got = lfs_server.stats()["downloaded"] - before
    clone_objects = {
        f: os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(os.path.join(clone, ".git", "lfs", "objects"))
        for f in fs
    }
    head_bytes = sum(clone_objects.values())
    head_meta = Metadata.loads(repo.out("show", "HEAD:model.pt").encode())
    needed = {o for e in head_meta.params.values() for o in objects_of(e)}
    assert got <= 1.05 * head_bytes and set(clone_objects) == needed  # what HEAD needs, nothing older
    assert_same_state(load(os.path.join(clone, "model.pt")), v2)
    # checking out the older commit fetches what it lacks, in one batch
    subprocess.run(["git", "checkout", "-q", "HEAD~1"], cwd=clone, env=repo.env, check=True)
    assert_same_state(load(os.path.join(clone, "model.pt")), v1)


def two_commits(repo, bare_remote, server):
    setup_repo(repo, bare_remote, server)
    path = os.path.join(repo.cwd, "model.pt")
    v1 = small_model(0)
    save(v1, path)
    repo("add", "-A")
    repo("commit", "-qm", "v1")
    v2 = type(v1)(v1)
    v2["head.weight"] = v1["head.weight"] + 1
    save(v2, path)
    repo("commit", "-qam", "v2")
    repo("push", "-q", "origin", "main")
    return v1, v2


def test_skip_smudge_then_fetch_and_checkout_models(repo, bare_remote, lfs_server, tmp_path):
    v1, v2 = two_commits(repo, bare_remote, lfs_server)
    clone = str(tmp_path / "clone")
    env = dict(repo.env, GIT_THETA_SKIP_SMUDGE="1")
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=env, check=True)
    c = type(repo)(clone, env)
    assert open(os.path.join(clone, "model.pt"), "rb").read(1) == b"{"  # metadata only
    assert not os.path.isdir(os.path.join(clone, ".git", "lfs", "objects"))
    assert c.status() == ""
    out = c.theta("fetch", "origin", "HEAD", "HEAD~1").stdout.decode()
    assert out.startswith("fetched 2 object(s)")  # v1: one pack of its small tensors; v2: its new head
    assert c.theta("fetch").stdout.decode().startswith("fetched 0 object(s)")
    stats = lfs_server.stats()
    assert c.theta("checkout-models").stdout.decode().strip() == "checked out model.pt"
    assert lfs_server.stats()["downloaded"] == stats["downloaded"]  # all local already
    assert_same_state(load(os.path.join(clone, "model.pt")), v2)
    assert c.status() == ""


def test_wrong_credentials_and_unreachable_server(repo, bare_remote, lfs_server, tmp_path):
    two_commits(repo, bare_remote, lfs_server)
    clone = str(tmp_path / "clone")
    env = dict(
        repo.env, GIT_THETA_SKIP_SMUDGE="1", GIT_THETA_FETCH_RETRIES="0", GIT_THETA_FETCH_STALL_TIMEOUT="5"
    )
    subprocess.run(["git", "clone", "-q", bare_remote, clone], env=env, check=True)
    c = type(repo)(clone, dict(env, GIT_THETA_SKIP_SMUDGE="0"))
    c("config", "credential.helper", "")
    c("config", "--add", "credential.helper", "!f() { echo username=theta; echo password=wrong; }; f")
    before = open(os.path.join(clone, "model.pt"), "rb").read()
    proc = c.theta("checkout-models", check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.count("\n") == 1 and "could not be fetched" in err
    assert open(os.path.join(clone, "model.pt"), "rb").read() == before  # untouched
    c("config", "--unset-all", "credential.helper")
    lfs_server.stop()
    proc = c.theta("checkout-models", check=False)
    assert proc.returncode == 1 and "could not be fetched" in proc.stderr.decode()
    assert open(os.path.join(clone, "model.pt"), "rb").read() == before


def test_object_missing_on_server_is_reported(repo, bare_remote, lfs_server, tmp_path):
    two_commits(repo, bare_remote, lfs_server)
    for d, _, files in os.walk(lfs_server.storage):
        for f in files:
            os.remove(os.path.join(d, f))
    clone = str(tmp_path / "clone")
    env = dict(repo.env, GIT_THETA_FETCH_RETRIES="0")
    proc = subprocess.run(["git", "clone", "-q", bare_remote, clone], env=env, capture_output=True)
    assert proc.returncode != 0
    assert "missing locally and could not be fetched" in proc.stderr.decode()
    fsck = type(repo)(clone, env).theta("fsck", check=False)
    assert fsck.returncode == 1
    assert "missing locally and on the remote" in fsck.stderr.decode()
