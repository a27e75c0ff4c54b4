#!/usr/bin/env python3
"""Stored bytes per commit for the standard changes, git-theta (plain `git add`: auto) vs Git LFS,
and checkout time of the newest commit of a 30-commit history of `dense` changes vs a 1-commit one.

Both sides commit the same sequence in one run (isolated HOMEs): init, then each scenario of
shared/bench on top of init. `lora` is added with `git theta add --update-type low-rank
--update-data` from its factors, converted to the original side-file layout (<param>/R, <param>/C).

    python benchmarks/bench_updates.py [--scale full|small] [--history 30] [--runs 3] [--workdir DIR]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import MAKE_MODEL, new_repo, sh, tree_bytes  # noqa: E402

SCENARIOS = ["sparse", "dense", "lora", "add-tokens", "resave"]
TARGETS = {  # stored bytes per commit, as a share of the checkpoint unless noted
    "sparse": (0.02, "<= 0.02 x checkpoint"),
    "dense": (0.75, "<= 0.75 x checkpoint"),
    "lora": (1.2, "<= 1.2 x factors"),
    "add-tokens": (0.05, "<= 0.05 x checkpoint"),
    "resave": (0.0, "0 new objects"),
}


def make(kind, prev, out, scale, seed=0):
    args = [
        sys.executable,
        MAKE_MODEL,
        kind,
        *([prev] if prev else []),
        out,
        "--scale",
        scale,
        "--seed",
        str(seed),
    ]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def side_file(lora_pt, out):
    """make_model's factors (k.lora_B, k.lora_A: W += B @ A) in the original layout: k/R = B, k/C = A."""
    import torch

    f = torch.load(lora_pt, weights_only=True)
    side = {}
    for key, value in f.items():
        if key.endswith(".lora_B"):
            side[key[: -len(".lora_B")] + "/R"] = value
        elif key.endswith(".lora_A"):
            side[key[: -len(".lora_A")] + "/C"] = value
    torch.save(side, out)
    return sum(v.numel() * v.element_size() for v in f.values())


def lfs_count(repo):
    return sum(len(f) for _, _, f in os.walk(os.path.join(repo, ".git", "lfs", "objects")))


def stored(repo):
    return tree_bytes(os.path.join(repo, ".git", "lfs", "objects")) + tree_bytes(
        os.path.join(repo, ".git", "objects")
    )


def storage_run(side, workdir, models, side_pt):
    """Bytes each scenario's commit adds (on top of init), for one side."""
    out = {}
    for kind in SCENARIOS:
        repo, env = new_repo(side, workdir, f"{side}-{kind}")
        shutil.copyfile(models["init"], os.path.join(repo, "model.pt"))
        sh(["git", "add", "model.pt"], repo, env)
        sh(["git", "commit", "-qm", "init"], repo, env)
        before, count = stored(repo), lfs_count(repo)
        shutil.copyfile(models[kind], os.path.join(repo, "model.pt"))
        if side == "theta" and kind == "lora":
            shutil.copyfile(
                models["init"], os.path.join(repo, "model.pt")
            )  # the original flow: side data only
            sh(
                ["git", "theta", "add", "model.pt", "--update-type", "low-rank", "--update-data", side_pt],
                repo,
                env,
            )
        else:
            sh(["git", "add", "model.pt"], repo, env)
        sh(["git", "commit", "-qm", kind], repo, env)
        out[kind] = stored(repo) - before
        out[kind + " objects"] = lfs_count(repo) - count
        shutil.rmtree(repo, ignore_errors=True)
    return out


def checkout_times(workdir, history, scale, runs):
    """Median checkout time of the newest commit: 1-commit history vs `history` dense commits."""
    times = {}
    for length in (1, history):
        repo, env = new_repo("theta", workdir, f"history-{length}")
        prev = None
        for i in range(length):
            path = os.path.join(workdir, f"hist-{i}.pt")
            if not os.path.exists(path):
                make("init" if i == 0 else "dense", prev, path, scale, seed=i)
            shutil.copyfile(path, os.path.join(repo, "model.pt"))
            sh(["git", "add", "model.pt"], repo, env)
            sh(["git", "commit", "-qm", f"v{i}"], repo, env)
            prev = path
        samples = []
        time.sleep(1.1)
        for _ in range(runs):
            os.remove(os.path.join(repo, "model.pt"))
            samples.append(sh(["git", "checkout", "--", "model.pt"], repo, env, timed=True)[0])
        times[length] = statistics.median(samples)
        import filecmp

        if not filecmp.cmp(os.path.join(repo, "model.pt"), prev, shallow=False):
            import torch

            a, b = torch.load(os.path.join(repo, "model.pt")), torch.load(prev)
            if any(not torch.equal(a[k], b[k]) for k in b):
                sys.exit(f"checkout of a {length}-commit history is not bit-exact")
        shutil.rmtree(repo, ignore_errors=True)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--history", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", choices=["storage", "checkout"], default=None, help="run one half")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-updates-")
    os.makedirs(workdir, exist_ok=True)
    models = {"init": os.path.join(workdir, "init.pt")}
    if not os.path.exists(models["init"]):
        make("init", None, models["init"], args.scale)
    for kind in SCENARIOS:
        models[kind] = os.path.join(workdir, f"{kind}.pt")
        if not os.path.exists(models[kind]):
            make(kind, models["init"], models[kind], args.scale, seed=1)
    side_pt = os.path.join(workdir, "lora-side.pt")
    factor_bytes = side_file(models["lora"] + ".lora.pt", side_pt)
    size = os.path.getsize(models["init"])

    if args.only != "checkout":
        report_storage(workdir, models, side_pt, factor_bytes, size, args.scale)
    if args.only != "storage":
        times = checkout_times(workdir, args.history, args.scale, args.runs)
        print(
            f"\ncheckout of the newest commit (median of {args.runs}): 1-commit history {times[1]:.2f} s, "
            f"{args.history}-commit dense history {times[args.history]:.2f} s, "
            f"ratio {times[args.history] / times[1]:.2f}  (target <= 1.5)"
        )


def report_storage(workdir, models, side_pt, factor_bytes, size, scale):
    results = {side: storage_run(side, workdir, models, side_pt) for side in ("lfs", "theta")}
    print(
        f"\nGPT-2 ({scale}) fp32 checkpoint {size / 1e6:.1f} MB; stored bytes added by each commit on top of init\n"
    )
    print(f"{'change':<12}{'Git LFS MB':>12}{'git-theta MB':>14}{'vs ckpt':>9}{'vs LFS':>8}  target")
    for kind in SCENARIOS:
        lfs, theta = results["lfs"][kind], results["theta"][kind]
        share = theta / (factor_bytes if kind == "lora" else size)
        unit = "x factors" if kind == "lora" else ""
        print(
            f"{kind:<12}{lfs / 1e6:>12.2f}{theta / 1e6:>14.3f}{share:>9.4f}{theta / max(lfs, 1):>8.3f}  "
            f"{TARGETS[kind][1]}{'  (' + unit + ')' if unit else ''}"
        )
    print(f"\nlora factors: {factor_bytes / 1e6:.2f} MB")
    print(
        "new LFS objects per commit (git-theta): "
        + ", ".join(f"{k} {results['theta'][k + ' objects']}" for k in SCENARIOS)
    )
    print("(git-theta bytes include the commit's git objects: metadata blob, tree, commit)")


if __name__ == "__main__":
    main()
