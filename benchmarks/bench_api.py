#!/usr/bin/env python3
"""Saving GPT-2-small at every step of a training loop with git_theta.save(background=True).

Each step does `--work` seconds of work (sleep: the accelerator computes, the CPU waits) and
moves every weight a little in place, as an optimizer step does. Baseline: the same loop
without saving, in the same run. Also reported: a foreground save and a load of one version.

A process's first saves of a path pay once for fresh memory (three copies of the model) and for
reading the version they build on: about 2 s on the 2-core VM of our numbers, where memory never
touched before costs ~2.4 us per 4 KiB page. A loop's ratio therefore falls with its length: the
default is a short training loop of 30 steps, `--steps 8` shows the warm-up at its heaviest, and
the steady-state ratio (steps after `--warmup`) is printed apart.

    python benchmarks/bench_api.py [--scale full|small] [--steps 30] [--work 1.0]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import MAKE_MODEL, isolated_env  # noqa: E402


def loop(sd, steps: int, work: float, save=None) -> tuple[float, list[float], list[float]]:
    """(seconds for the loop, seconds of each step, seconds each save() call held the loop)."""
    import torch

    calls, ends = [], []
    start = time.perf_counter()
    for i in range(steps):
        ends.append(time.perf_counter())
        time.sleep(work)
        with torch.no_grad():
            for t in sd.values():
                t.mul_(1.0001)  # every weight moves a little, in place
        if save:
            t0 = time.perf_counter()
            save(sd, i)
            calls.append(time.perf_counter() - t0)
    ends.append(time.perf_counter())
    return ends[-1] - start, [b - a for a, b in zip(ends, ends[1:])], calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3, help="first steps left out of the steady-state ratio")
    ap.add_argument("--work", type=float, default=1.0)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-api-")
    model = os.path.join(workdir, "init.pt")
    if not os.path.exists(model):
        subprocess.run([sys.executable, MAKE_MODEL, "init", model, "--scale", args.scale], check=True)
    env = isolated_env(os.path.join(workdir, "home"))
    os.environ.update(env)
    repo = os.path.join(workdir, "repo")
    subprocess.run(["rm", "-rf", repo], check=True)
    subprocess.run(["git", "init", "-q", repo], check=True)
    subprocess.run(["git", "theta", "install"], cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True)

    import torch

    import git_theta

    sd = torch.load(model, weights_only=True)
    size = sum(t.numel() * t.element_size() for t in sd.values())
    t0 = time.perf_counter()
    git_theta.save(sd, "model.pt", "first", repo=repo)
    first = time.perf_counter() - t0
    base, base_steps, _ = loop(sd, args.steps, args.work)

    def save(state, i):
        git_theta.save(state, "model.pt", f"step {i}", repo=repo, background=True)

    saving, saving_steps, calls = loop(sd, args.steps, args.work, save)
    t0 = time.perf_counter()
    git_theta.wait_for_saves()
    drain = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = git_theta.load("model.pt", repo=repo)
    load_s = time.perf_counter() - t0
    assert all(torch.equal(back[k], sd[k]) for k in sd), "the last version does not load back bit-exact"
    commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True)
    print(f"\nGPT-2 ({args.scale}) {size / 1e6:.1f} MB, {args.steps} steps of {args.work:.1f} s work\n")
    print(f"loop without saving          {base:8.2f} s")
    print(f"loop saving every step       {saving:8.2f} s   ratio {saving / base:.2f}  (target < 1.2)")
    print(f"  save() calls held the loop {sum(calls):.2f} s in all: the first {calls[0]:.2f} s, the slowest")
    print(f"  {max(calls):.2f} s, the median {sorted(calls)[len(calls) // 2]:.2f} s (copying the tensors)")
    print(
        f"  the last save finished {drain:.2f} s after the loop; counting that wait: ratio {(saving + drain) / base:.2f}"
    )
    if args.steps > args.warmup:
        w = args.warmup
        steady = sum(saving_steps[w:]) / sum(base_steps[w:])
        print(f"  steps after the first {w} (a process's first saves pay for fresh memory and for reading")
        print(f"  the version they build on): ratio {steady:.2f}")
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"  peak memory of the process {peak / 1e6:.0f} MB = {peak / size:.1f}x the model (the model itself included)"
    )
    print(f"  commits: {commits.stdout.strip()}")
    print(f"first save (foreground)      {first:8.2f} s")
    print(f"load of the newest version   {load_s:8.2f} s (bit-exact)")


if __name__ == "__main__":
    main()
