"""kill -9 at random points of clean, smudge, push and fetch: no corrupt object anywhere, no
partial checkpoint in place of a good one, and the next command works.

GIT_THETA_CRASH_POINTS sets how many kill points run (8 by default; the closing note of the
hardening issue reports 50).
"""

import hashlib
import os
import random
import signal
import subprocess
import time

import pytest
import torch

from tests.helpers import assert_same_state, load, push_and_clone, save

POINTS = int(os.environ.get("GIT_THETA_CRASH_POINTS", "8"))


def corrupt_objects(git_dir: str) -> list[str]:
    """Every object file under lfs/objects whose content does not hash to its name."""
    bad = []
    for root, _, files in os.walk(os.path.join(git_dir, "lfs", "objects")):
        for name in files:
            digest = hashlib.sha256()
            with open(os.path.join(root, name), "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() != name:
                bad.append(os.path.join(root, name))
    return bad


def run_killed(args: list[str], cwd: str, env: dict, delay: float) -> int | None:
    """Start a command in its own process group and SIGKILL the whole group after `delay`."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return proc.wait(timeout=delay)  # finished before the kill point
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def timed(args: list[str], cwd: str, env: dict) -> float:
    """Run a command to completion; its duration (the span kill points are drawn from)."""
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def model(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    sd = {f"w{i}": torch.randn(1000, 1000, generator=g) for i in range(10)}  # 4 MB each: own objects
    sd.update({f"b{i}": torch.randn(300, generator=g) for i in range(40)})  # packed
    return sd


def unlock(path: str) -> None:
    """What a user does after a killed git command: remove git's stale index.lock."""
    lock = os.path.join(path, ".git", "index.lock")
    if os.path.exists(lock):
        os.remove(lock)


def test_kill_at_random_points(repo, bare_remote, tmp_path):
    rng = random.Random(int(os.environ.get("GIT_THETA_CRASH_SEED", "0")))
    repo.theta("track", "model.pt")
    path = os.path.join(repo.cwd, "model.pt")
    states = [model(0)]
    save(states[0], path)
    repo("add", "-A")
    repo("commit", "-qm", "v0")
    clone = push_and_clone(repo, bare_remote, str(tmp_path / "clone"))
    c = repo.at(clone)
    kinds = ["clean", "smudge", "push", "fetch"]
    span = {"clean": 1.0, "smudge": 1.0, "push": 1.0, "fetch": 1.0}  # updated from full runs below
    killed = 0
    for point in range(POINTS):
        kind = kinds[point % len(kinds)]
        delay = rng.uniform(0.05, 0.95 * span[kind])
        if kind == "clean":
            states.append(model(len(states)))
            save(states[-1], path)
            killed += run_killed(["git", "add", "model.pt"], repo.cwd, repo.env, delay) is None
            unlock(repo.cwd)
            span[kind] = timed(["git", "add", "model.pt"], repo.cwd, repo.env)
            repo("commit", "-qm", f"v{len(states) - 1}")
            assert_same_state(load(path), states[-1])
        elif kind == "smudge":
            back = rng.randrange(len(states) - 1)
            rev = repo.out("rev-parse", f"main~{len(states) - 1 - back}").strip()
            killed += run_killed(["git", "checkout", "-q", rev], repo.cwd, repo.env, delay) is None
            unlock(repo.cwd)
            assert not [f for f in os.listdir(repo.cwd) if f.startswith(".theta-")]
            span[kind] = timed(["git", "checkout", "-q", "-f", rev], repo.cwd, repo.env)
            assert_same_state(load(path), states[back])
            repo("checkout", "-q", "-f", "main")
            assert_same_state(load(path), states[-1])
        elif kind == "push":
            killed += run_killed(["git", "push", "-q", "origin", "main"], repo.cwd, repo.env, delay) is None
            span[kind] = max(0.3, timed(["git", "push", "-q", "origin", "main"], repo.cwd, repo.env))
        else:
            c("fetch", "-q", "origin")
            args = ["git", "theta", "fetch", "origin", "origin/main"]
            killed += run_killed(args, clone, repo.env, delay) is None
            span[kind] = max(0.3, timed(args, clone, repo.env))
        for where in (repo.cwd, clone):
            assert corrupt_objects(os.path.join(where, ".git")) == [], (point, kind)
        assert corrupt_objects(bare_remote) == [], (point, kind)
    # everything pushed is whole: a fresh clone checks out the newest version bit-exact
    repo("push", "-q", "origin", "main")
    fresh = str(tmp_path / "fresh")
    subprocess.run(["git", "clone", "-q", bare_remote, fresh], env=repo.env, check=True, capture_output=True)
    assert_same_state(load(os.path.join(fresh, "model.pt")), states[-1])
    if POINTS >= 8:
        assert killed >= POINTS // 3  # most kill points hit a running command
    print(f"{POINTS} kill points, {killed} killed mid-command, no corrupt object")


@pytest.mark.parametrize("first, second", [("a.pt", "b.pt")])
def test_two_concurrent_theta_adds_both_succeed(repo, first, second):
    repo.theta("track", "*.pt")
    models = {first: model(1), second: model(2)}
    for name, sd in models.items():
        save(sd, os.path.join(repo.cwd, name))
    procs = [
        subprocess.Popen(
            ["git", "theta", "add", name],
            cwd=repo.cwd,
            env=repo.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in models
    ]
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()
    staged = repo.out("diff", "--cached", "--name-only").split()
    assert set(models) <= set(staged)
    repo("commit", "-qm", "both")
    for name, sd in models.items():
        os.remove(os.path.join(repo.cwd, name))
        repo("checkout", "--", name)
        assert_same_state(load(os.path.join(repo.cwd, name)), sd)
    assert corrupt_objects(os.path.join(repo.cwd, ".git")) == []
