#!/usr/bin/env python3
"""git-theta-merge-cli --merge ties on three GPT-2-small fine-tunes: time and peak memory.

Baseline in the same run: the whole-model way (torch.load the ancestor and three models, TIES
on every tensor, torch.save), as a script using mergekit-style full loading would do.

    python benchmarks/bench_merge.py [--scale full|small] [--workdir DIR]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import MAKE_MODEL, new_repo, sh  # noqa: E402

WHOLE_MODEL_TIES = """
import sys, torch
base = torch.load(sys.argv[1], weights_only=True)
models = [torch.load(p, weights_only=True) for p in sys.argv[2:5]]
out = {}
for k, b in base.items():
    taus = []
    for m in models:
        t = m[k] - b
        n = max(1, round(0.2 * t.numel()))
        thr = t.abs().reshape(-1).kthvalue(t.numel() - n + 1).values
        taus.append(t * (t.abs() >= thr))
    sign = torch.sign(sum(taus))
    agree = [(torch.sign(t) == sign) & (t != 0) for t in taus]
    out[k] = b + sum(t * a for t, a in zip(taus, agree)) / torch.clamp(sum(a.float() for a in agree), min=1)
torch.save(out, sys.argv[5])
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-merge-")
    os.makedirs(workdir, exist_ok=True)
    paths = [os.path.join(workdir, n) for n in ("base.pt", "m1.pt", "m2.pt", "m3.pt")]
    if not all(os.path.exists(p) for p in paths):
        subprocess.run([sys.executable, MAKE_MODEL, "init", paths[0], "--scale", args.scale], check=True)
        for i, p in enumerate(paths[1:], 1):
            subprocess.run([sys.executable, MAKE_MODEL, "few-layers" if i == 3 else "dense", paths[0], p,
                            "--scale", args.scale, "--seed", str(i)], check=True)  # fmt: skip
    size = os.path.getsize(paths[0])
    repo, env = new_repo("theta", workdir, "merge", pattern="*.pt")
    for p in paths:
        shutil.copyfile(p, os.path.join(repo, os.path.basename(p)))
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "models"], repo, env)
    cli = ["git-theta-merge-cli", "--models", "m1.pt", "m2.pt", "m3.pt", "--ancestor", "base.pt",
           "--merge", "ties", "--x:density=0.2", "--output", "merged.pt"]  # fmt: skip
    theta_s, theta_rss = sh(cli, repo, env, timed=True)
    whole_s, whole_rss = sh(
        [sys.executable, "-c", WHOLE_MODEL_TIES, *paths, os.path.join(workdir, "whole.pt")],
        workdir,
        env,
        timed=True,
    )
    import torch

    a = torch.load(os.path.join(repo, "merged.pt"), weights_only=True)
    b = torch.load(os.path.join(workdir, "whole.pt"), weights_only=True)
    worst = max(float((a[k] - b[k]).abs().max()) for k in b)
    print(f"\nTIES of three GPT-2 ({args.scale}) models, checkpoint {size / 1e6:.1f} MB each\n")
    print(f"{'':<36}{'time s':>8}{'peak MB':>10}")
    print(f"{'git-theta-merge-cli (store+commit)':<36}{theta_s:>8.2f}{theta_rss / 1e6:>10.0f}")
    print(f"{'whole models in torch (load+save)':<36}{whole_s:>8.2f}{whole_rss / 1e6:>10.0f}")
    print(f"\npeak memory {theta_rss / 1e6:.0f} MB = {theta_rss / (3 * size):.2f} x three models (target < 1 GB); "
          f"whole-model baseline {whole_rss / 1e6:.0f} MB; max abs difference of results {worst:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
