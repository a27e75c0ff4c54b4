"""End to end: `git theta prune` never deletes what a running command, a reflog entry, another
worktree or an over-sized metadata blob still needs (issue 19, "Data loss").

Objects are aged by hand (os.utime) so that prune's grace period, which would spare them anyway,
is out of the way and each test shows the one protection it is about. Concurrency is made
deterministic with barriers: a second filter that waits for a file, and the index lock that
`git_theta.save` queues on.
"""

import fcntl
import os
import subprocess
import sys
import threading
import time

import torch

from tests.helpers import assert_same_state, commit_tracked_model, lfs_objects, load, save, small_model

OLD = 30 * 86400  # seconds: past the default grace period of two weeks


def age_objects(repo_dir: str, seconds: float = OLD) -> None:
    """Make every object in the store look written `seconds` ago."""
    root = os.path.join(repo_dir, ".git", "lfs", "objects")
    when = time.time() - seconds
    for d, _, files in os.walk(root):
        for f in files:
            os.utime(os.path.join(d, f), (when, when))


def model(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = dict(small_model(seed))
    sd["big"] = torch.randn(400, 400, generator=g)  # packed with the rest (one object per version)
    return sd


class Watched:
    """A process whose stderr is collected line by line, to wait for what it says."""

    def __init__(self, args: list[str], cwd: str, env: dict):
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.decode("utf-8", "replace"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_for(self, text: str, timeout: float = 120) -> bool:
        """True once the process said `text`; False if it exited first (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.said(text):
                return True
            if self.proc.poll() is not None:
                self.reader.join(5)
                return self.said(text)
            time.sleep(0.02)
        return False

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code


def wait_for_file(path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_prune_waits_for_a_running_git_add(repo, tmp_path):
    """The objects of a `git add` still running (its index not yet written) are not deleted."""
    commit_tracked_model(repo, model(0), message="base")
    started, release = str(tmp_path / "gate-started"), str(tmp_path / "gate-release")
    # a second file whose filter holds `git add` open (after model.pt's tensors are stored) until told
    gate = f"cat >/dev/null; touch '{started}'; while [ ! -e '{release}' ]; do sleep 0.02; done; echo gate"
    repo("config", "filter.gate.clean", f'sh -c "{gate}"')
    with open(os.path.join(repo.cwd, ".gitattributes"), "a") as f:
        f.write("zz-gate.txt filter=gate\n")
    with open(os.path.join(repo.cwd, "zz-gate.txt"), "w") as f:
        f.write("x\n")
    new = model(1)
    path = os.path.join(repo.cwd, "model.pt")
    save(new, path)
    before = set(lfs_objects(repo.cwd))
    add = Watched(["git", "add", "model.pt", "zz-gate.txt"], repo.cwd, repo.env)
    wait_for_file(started)
    written = set(lfs_objects(repo.cwd)) - before
    assert written  # model.pt is cleaned, its index entry not yet written
    age_objects(repo.cwd)
    prune = Watched(["git", "theta", "prune", "--force"], repo.cwd, repo.env)
    waited = prune.wait_for("waiting for running git-theta commands")
    open(release, "w").close()
    assert add.finish() == 0
    assert prune.finish() == 0, "".join(prune.lines)
    assert written <= set(lfs_objects(repo.cwd)), "prune deleted the objects of the running add"
    assert waited, "".join(prune.lines)
    repo("commit", "-qm", "v2")
    os.remove(path)
    repo("checkout", "-q", "--", "model.pt")
    assert_same_state(load(path), new)


def test_prune_waits_for_a_running_save(repo, tmp_path):
    """A `git_theta.save` holds the lock from its first object until its commit."""
    commit_tracked_model(repo, model(0), message="base")
    torch.save(model(2), str(tmp_path / "next.pt"))
    index_lock = os.path.join(repo.cwd, ".git", "theta-index.lock")
    script = (
        "import sys, torch, git_theta\n"
        f"sd = torch.load({str(tmp_path / 'next.pt')!r})\n"
        f"print(git_theta.save(sd, 'model.pt', 'v2', repo={repo.cwd!r}))\n"
    )
    with open(index_lock, "a") as held:  # the save stores its tensors, then queues here to commit
        fcntl.flock(held, fcntl.LOCK_EX)
        saver = Watched([sys.executable, "-c", script], repo.cwd, repo.env)
        assert saver.wait_for("waiting for another git theta add"), "".join(saver.lines)
        age_objects(repo.cwd)
        prune = Watched(["git", "theta", "prune", "--force"], repo.cwd, repo.env)
        waited = prune.wait_for("waiting for running git-theta commands")
        fcntl.flock(held, fcntl.LOCK_UN)
    assert saver.finish() == 0, "".join(saver.lines)
    assert prune.finish() == 0, "".join(prune.lines)
    assert repo.theta("fsck", "--no-fetch", check=False).returncode == 0, "prune deleted the save's objects"
    assert waited, "".join(prune.lines)
    repo("reset", "-q", "--hard")
    repo.theta("checkout-models")
    assert_same_state(load(os.path.join(repo.cwd, "model.pt")), model(2))


def test_a_waiting_writer_and_prune_say_so_and_give_up(repo):
    """Prune waits for writers and writers for prune, each saying so; GIT_THETA_LOCK_TIMEOUT ends it."""
    commit_tracked_model(repo, model(0), message="base")
    lock = os.path.join(repo.cwd, ".git", "theta", "objects.lock")
    env = dict(repo.env, GIT_THETA_LOCK_TIMEOUT="0.5")
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # a writer
        proc = subprocess.run(
            ["git", "theta", "prune", "--force"], cwd=repo.cwd, env=env, capture_output=True
        )
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "waiting for running git-theta commands" in err
        assert "prune deleted nothing" in err and len(err.strip().splitlines()) == 2
        fcntl.flock(held, fcntl.LOCK_EX)  # a prune
        save(model(3), os.path.join(repo.cwd, "model.pt"))
        proc = subprocess.run(["git", "theta", "add", "model.pt"], cwd=repo.cwd, env=env, capture_output=True)
        err = proc.stderr.decode()
        assert proc.returncode != 0 and "waiting for `git theta prune` to finish" in err
        assert "try again when it has finished" in err


def test_prune_keeps_what_the_reflog_reaches(repo):
    path = commit_tracked_model(repo, model(0), message="v1")
    v2 = model(1)
    save(v2, path)
    repo("commit", "-qam", "v2")
    repo("reset", "-q", "--hard", "HEAD~1")
    age_objects(repo.cwd)
    repo.theta("prune", "--force")
    repo("checkout", "-q", "HEAD@{1}")
    assert_same_state(load(path), v2)
    repo("checkout", "-q", "main")
    # told to, it drops what only the reflog reaches
    out = repo.theta("prune", "--force", "--no-reflog").stdout.decode()
    assert not out.startswith("deleted 0 object(s)")
    assert repo("checkout", "-q", "HEAD@{1}", check=False).returncode != 0


def test_prune_keeps_models_staged_in_other_worktrees(repo, tmp_path):
    path = commit_tracked_model(repo, model(0), message="v1")
    other = str(tmp_path / "other")
    repo("worktree", "add", "-q", "-b", "side", other)
    staged = model(4)
    save(staged, os.path.join(other, "model.pt"))
    repo("add", "model.pt", cwd=other)
    detached = str(tmp_path / "detached")
    repo("worktree", "add", "-q", "--detach", detached)
    committed = model(5)
    save(committed, os.path.join(detached, "model.pt"))
    repo("commit", "-qam", "on a detached HEAD", cwd=detached)
    repo("reflog", "expire", "--expire=now", "--all")  # HEADs and indexes alone must keep them
    age_objects(repo.cwd)
    repo.theta("prune", "--force")
    os.remove(os.path.join(other, "model.pt"))
    repo("checkout", "-q", "--", "model.pt", cwd=other)
    assert_same_state(load(os.path.join(other, "model.pt")), staged)
    os.remove(os.path.join(detached, "model.pt"))
    repo("checkout", "-q", "--", "model.pt", cwd=detached)
    assert_same_state(load(os.path.join(detached, "model.pt")), committed)
    assert_same_state(load(path), model(0))


def test_prune_spares_recent_objects_and_honours_the_expiry(repo):
    path = commit_tracked_model(repo, model(0), message="v1")
    committed = set(lfs_objects(repo.cwd))
    save(model(6), path)
    repo("add", "model.pt")  # added, then abandoned: nothing refers to its objects
    repo("reset", "-q", "--hard")
    before = set(lfs_objects(repo.cwd))
    n = len(before - committed)  # one pack, or more where the storage policy re-stores a tensor
    assert n >= 1
    out = repo.theta("prune", "--force").stdout.decode()
    assert "deleted 0 object(s)" in out and f"spared {n} unreferenced object(s)" in out
    assert "written since 2.weeks.ago" in out
    age_objects(repo.cwd, 3 * 86400)
    repo("config", "gc.pruneExpire", "1.week.ago")  # git's own setting, as git gc honours it
    assert "deleted 0 object(s)" in repo.theta("prune", "--force").stdout.decode()
    repo("config", "theta.pruneExpire", "2.days.ago")  # ours wins over git's
    env_never = dict(repo.env, GIT_THETA_PRUNE_EXPIRE="never")  # and the environment over both
    proc = subprocess.run(["git", "theta", "prune"], cwd=repo.cwd, env=env_never, capture_output=True)
    assert "would delete 0 object(s)" in proc.stdout.decode()
    bad = repo.theta("prune", "--expire", "someday", check=False)
    assert bad.returncode != 0 and "'someday' is not a date git understands" in bad.stderr.decode()
    assert f"deleted {n} object(s)" in repo.theta("prune", "--force").stdout.decode()
    assert before - set(lfs_objects(repo.cwd)) == before - committed


def test_storing_an_object_again_makes_it_recent(repo):
    """An old unreferenced object that a new add writes again must not look old to prune."""
    path = commit_tracked_model(repo, model(0), message="v1")
    committed = set(lfs_objects(repo.cwd))
    save(model(7), path)
    repo("add", "model.pt")
    written = set(lfs_objects(repo.cwd)) - committed
    repo("reset", "-q", "--hard")
    age_objects(repo.cwd)
    save(model(7), path)
    repo("add", "model.pt")  # the same tensors: the objects exist already
    recent = {
        oid
        for oid in lfs_objects(repo.cwd)
        if time.time()
        - os.path.getmtime(os.path.join(repo.cwd, ".git", "lfs", "objects", oid[:2], oid[2:4], oid))
        < 3600
    }
    assert recent == written


def _with_limit(limit: int, argv: list[str]) -> str:
    """A `git theta` run whose metadata size limit is `limit` bytes (stands for 512 MiB)."""
    return (
        "import sys\nimport git_theta.metadata as m\n"
        f"m.MAX_METADATA = {limit}\n"
        "from git_theta.entry import main\n"
        f"sys.argv = ['git-theta', *{argv!r}]\nmain()\n"
    )


def test_metadata_past_the_limit_stops_prune_and_push(repo, bare_remote):
    """A blob that looks like metadata but is past the size limit is never skipped in silence."""
    path = commit_tracked_model(repo, model(0), message="v1")
    size = len(repo("show", "HEAD:model.pt").stdout)
    age_objects(repo.cwd)
    before = set(lfs_objects(repo.cwd))
    run = lambda argv, **kw: subprocess.run(  # noqa: E731
        [sys.executable, "-c", _with_limit(size - 1, argv)],
        cwd=repo.cwd,
        env=repo.env,
        capture_output=True,
        **kw,
    )
    proc = run(["prune", "--force"])
    assert proc.returncode != 0 and "looks like git-theta metadata but is larger than" in proc.stderr.decode()
    assert set(lfs_objects(repo.cwd)) == before
    head = repo.out("rev-parse", "HEAD").strip()
    proc = run(
        ["pre-push", "origin", bare_remote],
        input=f"refs/heads/main {head} refs/heads/main {'0' * 40}\n".encode(),
    )
    assert proc.returncode != 0 and "git push stops" in proc.stderr.decode()
    assert os.path.exists(path)


def test_prune_keeps_the_record_of_verified_entries_to_what_is_referenced(repo):
    """`.git/theta/verified` (entries known to hold their content) shrinks with what prune
    deletes instead of growing forever; what is still referenced stays on record."""
    from git_theta.metadata import Metadata
    from git_theta.storage import verified

    path = commit_tracked_model(repo, model(0), message="v1")
    save(model(1), path)
    repo("commit", "-qam", "v2")
    record = os.path.join(repo.cwd, ".git", "theta", "verified")

    def fingerprints(rev: str) -> set[str]:
        meta = Metadata.loads(repo("cat-file", "-p", f"{rev}:model.pt").stdout)
        return {verified.fingerprint(e) for e in meta.params.values()}

    v1, v2 = fingerprints("HEAD~1"), fingerprints("HEAD")
    with open(record) as f:
        before = {line.strip() for line in f}
    assert v1 | v2 <= before
    repo("reset", "-q", "--hard", "HEAD~1")
    age_objects(repo.cwd)
    repo.theta("prune", "--force", "--no-reflog")
    with open(record) as f:
        after = {line.strip() for line in f}
    assert v1 <= after and not (v2 - v1) & after
    repo.theta("fsck", "--no-fetch")
