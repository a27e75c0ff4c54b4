#!/usr/bin/env python3
"""`git diff` of a two-block change on GPT-2-small, against the time to read those tensors.

Baselines, each a fresh Python process as a user would run it:
  read-stored: decode the changed tensors of both commits from git-theta's store (numpy, no torch)
  read-torch:  torch.load(mmap=True) both checkpoint files and copy out the changed tensors
Also shown: `git theta diff --stat` and a metadata-only diff (`git diff --stat`).

    python benchmarks/bench_diff.py [--scale full|small] [--runs 5] [--workdir DIR]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import isolated_env, make_models  # noqa: E402

READ_STORED = """
import json, subprocess, sys
from git_theta.metadata import Metadata
from git_theta.storage.lfs_store import LfsStore
from git_theta.updates import load_entry
a = Metadata.loads(subprocess.run(["git", "show", "HEAD~1:model.pt"], capture_output=True).stdout)
b = Metadata.loads(subprocess.run(["git", "show", "HEAD:model.pt"], capture_output=True).stdout)
store = LfsStore.for_cwd(".")
names = [n for n in b.params if a.params[n].hash != b.params[n].hash]
for meta in (a, b):
    for n in names:
        load_entry(meta.params[n], store, n)
"""

READ_TORCH = """
import sys, torch
a = torch.load(sys.argv[1], mmap=True, weights_only=True)
b = torch.load(sys.argv[2], mmap=True, weights_only=True)
names = [n for n in b if n.startswith(tuple(sys.argv[3].split(",")))]
out = [a[n].clone() for n in names] + [b[n].clone() for n in names]
"""


def timed(args, cwd, env) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-")
    os.makedirs(workdir, exist_ok=True)
    v1, v2 = make_models(workdir, args.scale)
    env = isolated_env(os.path.join(workdir, "home-diff"))
    repo = os.path.join(workdir, "repo-diff")
    subprocess.run(["rm", "-rf", repo], check=True)
    subprocess.run(["git", "init", "-q", repo], env=env, check=True)
    for cmd in (["git", "theta", "install"], ["git", "theta", "track", "model.pt"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
    for i, v in enumerate((v1, v2)):
        subprocess.run(["cp", v, os.path.join(repo, "model.pt")], check=True)
        subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
        subprocess.run(["git", "commit", "-qm", f"v{i}"], cwd=repo, env=env, check=True)
    stat = subprocess.run(
        ["git", "diff", "HEAD~1", "HEAD"], cwd=repo, env=env, capture_output=True, check=True
    )
    header = stat.stdout.decode().splitlines()[1]
    changed = [
        line.split()[1]
        for line in stat.stdout.decode().splitlines()[2:]
        if line.strip().startswith("modified")
    ]
    prefixes = sorted({n.rsplit(".", 2)[0] + "." if n.startswith("h.") else n for n in changed})
    cases = {
        "git diff HEAD~1 HEAD": (["git", "diff", "HEAD~1", "HEAD"], repo),
        "git theta diff --stat": (["git", "theta", "diff", "HEAD~1", "HEAD", "--stat"], repo),
        "git diff --stat (metadata only)": (["git", "diff", "--stat", "HEAD~1", "HEAD"], repo),
        "read-stored (baseline)": ([sys.executable, "-c", READ_STORED], repo),
        "read-torch (baseline)": ([sys.executable, "-c", READ_TORCH, v1, v2, ",".join(prefixes)], repo),
    }
    times = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, (cmd, cwd) in cases.items():
            times[name].append(timed(cmd, cwd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{header}\nmedians of {args.runs} runs\n")
    for name in cases:
        print(f"{name:<34}{med[name]:>8.2f} s")
    print(
        f"\ngit diff / read-stored: {med['git diff HEAD~1 HEAD'] / med['read-stored (baseline)']:.2f}  (target <= 2)"
    )
    print(f"git diff / read-torch:  {med['git diff HEAD~1 HEAD'] / med['read-torch (baseline)']:.2f}")


if __name__ == "__main__":
    main()
