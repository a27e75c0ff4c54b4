#!/usr/bin/env python3
"""git-theta vs plain Git LFS on GPT-2-small: add, re-add after a two-block change, checkout.

Both sides run in the same session with isolated HOMEs, alternating, several times; the script
prints medians and git-theta/Git LFS ratios. Peak memory is the max RSS of the git command and
its filter (GNU time); stored bytes are what each commit adds under .git/lfs/objects.

    python benchmarks/bench_core.py [--scale full|small] [--runs 3] [--workdir DIR]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_MODEL = os.path.join(HERE, "..", "..", "shared", "bench", "make_model.py")


def sh(args, cwd, env, timed=False):
    """Run a command; with timed, return (seconds, max RSS bytes) from GNU time."""
    if not timed:
        subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        return None
    os.sync()  # start each timing with no dirty pages left by the previous step (less noise)
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *args], cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{proc.stderr.decode()}")
    rss = int(re.search(rb"MAXRSS (\d+)", proc.stderr).group(1)) * 1024
    return elapsed, rss


def tree_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def make_models(workdir, scale):
    v1, v2 = os.path.join(workdir, "v1.pt"), os.path.join(workdir, "v2.pt")
    if not os.path.exists(v2):
        if os.path.exists(MAKE_MODEL):
            subprocess.run([sys.executable, MAKE_MODEL, "init", v1, "--scale", scale], check=True)
            subprocess.run([sys.executable, MAKE_MODEL, "few-layers", v1, v2, "--scale", scale], check=True)
        else:
            from git_theta.demo import write_models

            write_models(v1, v2, scale)
    return v1, v2


def isolated_env(home):
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_THETA_PROGRESS="0")
    for key, value in (
        ("user.name", "bench"),
        ("user.email", "bench@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def new_repo(side, workdir, name, pattern="model.pt"):
    """A fresh repository (and isolated HOME) where `pattern` goes through Git LFS or git-theta."""
    home, repo = os.path.join(workdir, f"home-{name}"), os.path.join(workdir, f"repo-{name}")
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    env = isolated_env(home)
    subprocess.run(["git", "init", "-q", repo], env=env, check=True)
    if side == "lfs":
        sh(["git", "lfs", "track", pattern], repo, env)
    else:
        sh(["git", "theta", "install"], repo, env)
        sh(["git", "theta", "track", pattern], repo, env)
    sh(["git", "add", ".gitattributes"], repo, env)
    sh(["git", "commit", "-qm", "attributes"], repo, env)
    return repo, env


def run_side(side, workdir, v1, v2, run):
    repo, env = new_repo(side, workdir, f"{side}-{run}")
    lfs_dir = os.path.join(repo, ".git", "lfs", "objects")
    out = {}
    shutil.copyfile(v1, os.path.join(repo, "model.pt"))
    out["add_v1_s"], out["add_v1_rss"] = sh(["git", "add", "model.pt"], repo, env, timed=True)
    sh(["git", "commit", "-qm", "v1"], repo, env)
    out["stored_v1"] = tree_bytes(lfs_dir)
    shutil.copyfile(v2, os.path.join(repo, "model.pt"))
    out["add_v2_s"], out["add_v2_rss"] = sh(["git", "add", "model.pt"], repo, env, timed=True)
    sh(["git", "commit", "-qm", "v2"], repo, env)
    out["stored_v2"] = tree_bytes(lfs_dir) - out["stored_v1"]
    time.sleep(1.1)  # let the index age past git's racy-timestamp window, as in real use
    out["checkout_s"], out["checkout_rss"] = sh(["git", "checkout", "-q", "HEAD~1"], repo, env, timed=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env, capture_output=True).stdout
    if status.strip():
        sys.exit(f"{side}: git status not clean after checkout: {status!r}")
    shutil.rmtree(repo, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-")
    os.makedirs(workdir, exist_ok=True)
    v1, v2 = make_models(workdir, args.scale)
    size = os.path.getsize(v1)
    sys.path.insert(0, os.path.join(HERE, ".."))
    import torch

    a, b = torch.load(v1, weights_only=True), torch.load(v2, weights_only=True)
    changed = sum(t.numel() * t.element_size() for k, t in b.items() if not torch.equal(a[k], t))
    del a, b
    results = {"lfs": [], "theta": []}
    for run in range(args.runs):
        for side in ("lfs", "theta"):  # alternate so both see the same machine noise
            results[side].append(run_side(side, workdir, v1, v2, run))
            print(f"run {run + 1}/{args.runs} {side}: {results[side][-1]}", file=sys.stderr)

    def med(side, key):
        return statistics.median(r[key] for r in results[side])

    print(
        f"\nGPT-2 ({args.scale}) checkpoint {size / 1e6:.1f} MB, two-block change {changed / 1e6:.1f} MB, "
        f"medians of {args.runs} runs\n"
    )
    print(f"{'metric':<34}{'Git LFS':>12}{'git-theta':>12}{'ratio':>8}  target")
    rows = [
        ("git add, first version (s)", "add_v1_s", "<= 1.5"),
        ("git add, two blocks changed (s)", "add_v2_s", "<= 1.0"),
        ("git checkout of older commit (s)", "checkout_s", "<= 1.5"),
    ]
    for label, key, target in rows:
        lfs, theta = med("lfs", key), med("theta", key)
        print(f"{label:<34}{lfs:>12.2f}{theta:>12.2f}{theta / lfs:>8.2f}  {target}")
    peak = max(med("theta", k) for k in ("add_v1_rss", "add_v2_rss", "checkout_rss"))
    print(
        f"{'peak memory, filter (MB)':<34}{max(med('lfs', k) for k in ('add_v1_rss', 'checkout_rss')) / 1e6:>12.0f}"
        f"{peak / 1e6:>12.0f}{peak / size:>8.2f}  <= 1.5 x checkpoint"
    )
    s1l, s1t = med("lfs", "stored_v1"), med("theta", "stored_v1")
    s2l, s2t = med("lfs", "stored_v2"), med("theta", "stored_v2")
    print(
        f"{'stored, first version (MB)':<34}{s1l / 1e6:>12.1f}{s1t / 1e6:>12.1f}{s1t / size:>8.3f}  <= 0.92 x checkpoint"
    )
    print(
        f"{'stored, two-block change (MB)':<34}{s2l / 1e6:>12.1f}{s2t / 1e6:>12.1f}{s2t / changed:>8.3f}  <= 1.1 x changed tensors"
    )


if __name__ == "__main__":
    main()
