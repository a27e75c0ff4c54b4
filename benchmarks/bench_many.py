#!/usr/bin/env python3
"""Many small tensors: `git add` and checkout of a 10,000-tensor checkpoint against a 148-tensor
checkpoint of the same total size (GPT-2-small's count), both torch files of random fp32 weights.

    python benchmarks/bench_many.py [--size-mb 498] [--many 10000] [--few 148]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import new_repo, sh  # noqa: E402


def write_model(path: str, count: int, total_bytes: int, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    per = max(1, total_bytes // 4 // count)
    sd = {f"block.{i}.weight": torch.randn(per, generator=g) * 0.02 for i in range(count)}
    torch.save(sd, path)


def run(count: int, size: int, workdir: str) -> dict:
    model = os.path.join(workdir, f"model-{count}.pt")
    if not os.path.exists(model):
        write_model(model, count, size, seed=count)
    repo, env = new_repo("theta", workdir, f"many-{count}")
    shutil.copyfile(model, os.path.join(repo, "model.pt"))
    out = {}
    out["add_s"], out["add_rss"] = sh(["git", "add", "model.pt"], repo, env, timed=True)
    sh(["git", "commit", "-qm", "model"], repo, env)
    os.remove(os.path.join(repo, "model.pt"))
    time.sleep(1.1)
    out["checkout_s"], out["checkout_rss"] = sh(["git", "checkout", "--", "model.pt"], repo, env, timed=True)
    import torch

    a = torch.load(model, weights_only=True)
    b = torch.load(os.path.join(repo, "model.pt"), weights_only=True)
    same = list(a) == list(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.view(torch.int32).equal(y.view(torch.int32))
        for x, y in zip(a.values(), b.values())
    )
    if not same:  # torch files are compared tensor by tensor: data.pkl is pickled anew
        sys.exit(f"{count} tensors: the checked-out tensors differ from the added ones")
    objects = sum(len(f) for _, _, f in os.walk(os.path.join(repo, ".git", "lfs", "objects")))
    out["objects"] = objects
    shutil.rmtree(repo, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=498)
    ap.add_argument("--many", type=int, default=10000)
    ap.add_argument("--few", type=int, default=148)
    ap.add_argument("--repeat", type=int, default=3, help="runs per checkpoint (medians shown)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-many-")
    os.makedirs(workdir, exist_ok=True)
    size = int(args.size_mb * 1e6)
    runs = {n: [] for n in (args.few, args.many)}
    for _ in range(args.repeat):  # interleaved, so drifting disk speed hits both alike
        for n in runs:
            runs[n].append(run(n, size, workdir))
    few, many = ({k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]} for n in runs)
    print(f"\n{args.size_mb:.0f} MB of fp32 weights as {args.few} or {args.many} tensors (torch files)")
    print(f"median of {args.repeat} runs each\n")
    print(f"{'':<14}{args.few:>10}{args.many:>10}   ratio (target < 2)")
    for key, label in (("add_s", "git add (s)"), ("checkout_s", "checkout (s)")):
        print(f"{label:<14}{few[key]:>10.2f}{many[key]:>10.2f}   {many[key] / few[key]:.2f}")
    for key, label in (("add_rss", "add peak MB"), ("checkout_rss", "checkout MB")):
        print(f"{label:<14}{few[key] / 1e6:>10.0f}{many[key] / 1e6:>10.0f}")
    print(f"{'LFS objects':<14}{few['objects']:>10}{many['objects']:>10}")


if __name__ == "__main__":
    main()
