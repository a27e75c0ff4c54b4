"""End to end: `git theta prune` and `git theta fsck`."""

import os

import torch

from tests.helpers import assert_same_state, commit_tracked_model, lfs_objects, load, save, small_model


def test_prune_frees_deleted_branch_and_keeps_the_rest(repo):
    # counts the objects one add writes: under the bounded storage policy an add of this tiny
    # model also re-stores the small tensors of its older pack (a second object)
    repo("config", "theta.storagePolicy", "smallest")
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    versions = {}
    v = small_model(0)
    save(v, path)
    repo("add", "-A")
    repo("commit", "-qm", "base")
    versions[repo.out("rev-parse", "HEAD").strip()] = v
    base_objects = set(lfs_objects(repo.cwd))
    repo("switch", "-q", "-c", "experiment")
    x = type(v)(v)
    x["layers.0.weight"] = v["layers.0.weight"] * 3
    save(x, path)
    repo("commit", "-qam", "experiment")
    experiment_only = set(lfs_objects(repo.cwd)) - base_objects
    repo("switch", "-q", "main")
    w = type(v)(v)
    w["head.weight"] = v["head.weight"] - 1
    save(w, path)
    repo("commit", "-qam", "main v2")
    versions[repo.out("rev-parse", "HEAD").strip()] = w
    # an added-then-abandoned version leaves an object nothing refers to
    y = type(v)(v)
    y["embed.weight"] = v["embed.weight"] + 7
    save(y, path)
    repo("add", "model.pt")
    repo("checkout", "-q", "HEAD", "--", "model.pt")
    repo("branch", "-q", "-D", "experiment")

    # HEAD's reflog still reaches the experiment, and everything is younger than the grace period
    kept = repo.theta("prune").stdout.decode()
    assert "would delete 0 object(s)" in kept and "spared 1 unreferenced object(s)" in kept
    now = ["--expire=now", "--no-reflog"]
    dry = repo.theta("prune", *now).stdout.decode()
    assert dry.startswith(f"would delete {len(experiment_only) + 1} object(s)") and "--force" in dry
    assert experiment_only <= set(lfs_objects(repo.cwd))  # dry run deletes nothing
    repo.theta("prune", "--force", *now)
    left = set(lfs_objects(repo.cwd))
    assert not (experiment_only & left)
    assert repo.theta("prune", *now).stdout.decode().startswith("would delete 0 object(s)")
    for sha, sd in versions.items():
        repo("checkout", "-q", sha)
        assert_same_state(load(path), sd)
    assert repo.theta("fsck", "--no-fetch").returncode == 0


def test_prune_keeps_stashed_and_staged_versions(repo):
    path = commit_tracked_model(repo, small_model(0), message="base")
    stashed = small_model(1)
    save(stashed, path)
    repo("stash", "-q")
    staged = small_model(2)
    save(staged, path)
    repo("add", "model.pt")
    repo.theta("prune", "--force", "--expire=now", "--no-reflog")
    os.remove(path)
    repo("checkout", "-q", "--", "model.pt")  # from the index
    assert_same_state(load(path), staged)
    repo("reset", "-q", "--hard")
    repo("stash", "pop", "-q")
    assert_same_state(load(path), stashed)


def test_fsck_finds_corrupt_and_missing_objects(repo):
    sd = dict(small_model(0))  # small tensors share a pack; two large ones an object each
    g = torch.Generator().manual_seed(1)
    sd.update({"big.a": torch.randn(600, 600, generator=g), "big.b": torch.randn(600, 600, generator=g)})
    commit_tracked_model(repo, sd, message="base")
    root = os.path.join(repo.cwd, ".git", "lfs", "objects")
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    out = repo.theta("fsck", "--no-fetch")
    assert len(files) == 3 and out.returncode == 0
    assert "checked 3 object(s): no problem(s)" in out.stdout.decode()
    with open(files[0], "r+b") as f:
        f.seek(5)
        f.write(b"\x00\x01\x02")
    os.remove(files[1])
    proc = repo.theta("fsck", "--no-fetch", check=False)
    err = proc.stderr.decode()
    commit = repo.out("rev-parse", "HEAD").strip()[:10]
    assert proc.returncode == 1
    assert f"model.pt @ {commit}: parameter" in err
    assert "corrupt (checksum mismatch)" in err and "missing locally" in err


def test_prune_removes_stale_temporary_files(repo):
    repo.theta("track", "model.pt")
    save(small_model(0), os.path.join(repo.cwd, "model.pt"))
    repo("add", "-A")
    repo("commit", "-qm", "base")
    tmp = os.path.join(repo.cwd, ".git", "lfs", "tmp")
    os.makedirs(tmp, exist_ok=True)
    old, fresh = os.path.join(tmp, "theta-killed"), os.path.join(tmp, "theta-running")
    for p in (old, fresh):
        with open(p, "wb") as f:
            f.write(b"partial")
    os.utime(old, (1, 1))
    assert "would delete 1 stale temporary file" in repo.theta("prune").stdout.decode()
    repo.theta("prune", "--force")
    assert not os.path.exists(old) and os.path.exists(fresh)
