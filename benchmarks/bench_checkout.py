#!/usr/bin/env python3
"""Checkout and fresh-clone speed: git-theta vs Git LFS vs DVC (checkout by copy), GPT-2-small.

Three versions are committed on each side (v1 = make_model.py init, v2 = dense fine-tune of v1,
v3 = few-layers on v2) and pushed to a local remote. Each round, for each side in turn:

- fresh clone of v3 (DVC: `git clone` + `dvc pull`), objects fetched from the remote;
- checkout of v1, then of v3, in the original repository, objects local (DVC: `git checkout`
  + `dvc checkout`);
- after each step `git status` (timed as well: a file in the index's second is re-read through the
  clean filter by the next git command), which must be clean.

Timed steps start after `sync`; peak memory is the largest process's max RSS (GNU time). Every
checked-out file is compared with the first one of its version, and that one tensor by tensor
with the source checkpoint (bit-exact). Prints medians over the rounds and ratios to Git LFS and
DVC. The machine's load is printed too: on a shared machine compare ratios, not seconds.

    python benchmarks/bench_checkout.py [--rounds 3] [--scale full] [--workdir DIR] [--dvc PATH]
        [--baseline DIR]   # also an older git-theta checkout (its source folder), as side "before"
"""

import argparse
import hashlib
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
if not os.path.exists(MAKE_MODEL):
    MAKE_MODEL = "/work/shared/bench/make_model.py"
SIDES = ("theta", "lfs", "dvc")
STEPS = ("clone", "checkout_v1", "checkout_v3")


def run(args, cwd, env, timed=False):
    """Run a command (a list, or several lists run one after the other); with timed, return
    (seconds, peak RSS bytes of the largest process)."""
    cmds = args if isinstance(args[0], list) else [args]
    if not timed:
        for cmd in cmds:
            p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
            if p.returncode:
                sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{p.stderr.decode()}")
        return None
    os.sync()
    seconds, rss = 0.0, 0
    for cmd in cmds:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], cwd=cwd, env=env, capture_output=True)
        seconds += time.perf_counter() - start
        if p.returncode:
            sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{p.stderr.decode()}")
        rss = max(rss, int(re.findall(rb"MAXRSS (\d+)", p.stderr)[-1]) * 1024)
    return seconds, rss


def make_models(workdir, scale):
    paths = [os.path.join(workdir, f"v{i}.pt") for i in (1, 2, 3)]
    steps = [["init", paths[0]], ["dense", paths[0], paths[1]], ["few-layers", paths[1], paths[2]]]
    for path, step in zip(paths, steps):
        if not os.path.exists(path):
            subprocess.run([sys.executable, MAKE_MODEL, *step, "--scale", scale], check=True)
    return paths


def isolated_env(home, dvc_bin):
    os.makedirs(home, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_THETA_PROGRESS="0", DVC_NO_ANALYTICS="1")
    env["PATH"] = os.path.dirname(dvc_bin) + os.pathsep + env["PATH"] if dvc_bin else env["PATH"]
    for key, value in (
        ("user.name", "bench"),
        ("user.email", "b@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True)
    subprocess.run(["git", "lfs", "install", "--skip-repo"], env=env, check=True, stdout=subprocess.DEVNULL)
    return env


def setup_side(side, workdir, models, env, dvc):
    """The side's repository with v1..v3 tagged, pushed to a bare remote (and a DVC remote)."""
    repo, bare = os.path.join(workdir, f"repo-{side}"), os.path.join(workdir, f"remote-{side}.git")
    for d in (repo, bare, os.path.join(workdir, f"dvc-store-{side}")):
        shutil.rmtree(d, ignore_errors=True)
    run(["git", "init", "-q", repo], workdir, env)
    run(["git", "init", "-q", "--bare", bare], workdir, env)
    if side in ("theta", "before"):
        run([["git", "theta", "install"], ["git", "theta", "track", "model.pt"]], repo, env)
    elif side == "lfs":
        run(["git", "lfs", "track", "model.pt"], repo, env)
    else:
        store = os.path.join(workdir, f"dvc-store-{side}")
        run([[dvc, "init", "-q"], [dvc, "remote", "add", "-d", "store", store]], repo, env)
        run([dvc, "config", "core.autostage", "true"], repo, env)
    run([["git", "add", "-A"], ["git", "commit", "-qm", "setup"]], repo, env)
    for i, model in enumerate(models, 1):
        shutil.copyfile(model, os.path.join(repo, "model.pt"))
        if side == "dvc":
            run([dvc, "add", "-q", "model.pt"], repo, env)
            run(["git", "add", "model.pt.dvc", ".gitignore"], repo, env)
        else:
            run(["git", "add", "model.pt"], repo, env)
        run([["git", "commit", "-qm", f"v{i}"], ["git", "tag", f"v{i}"]], repo, env)
    run(["git", "remote", "add", "origin", bare], repo, env)
    run(["git", "push", "-q", "origin", "main", "--tags"], repo, env)
    if side == "dvc":
        run([dvc, "push", "-q"], repo, env)
    return repo, bare


def status_clean(cwd, env, side, dvc):
    """Time `git status` (and `dvc status` for DVC); exit when either reports a change."""
    start = time.perf_counter()
    out = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, env=env, capture_output=True).stdout
    seconds = time.perf_counter() - start
    if out.strip():
        sys.exit(f"{side}: git status not clean in {cwd}: {out!r}")
    if side == "dvc":
        dvc_out = subprocess.run([dvc, "status", "-q"], cwd=cwd, env=env, capture_output=True)
        if dvc_out.returncode:
            sys.exit(f"dvc status not clean in {cwd}: {dvc_out.stdout!r}")
    return seconds


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


class Checker:
    """Each version's first checked-out file is compared tensor by tensor with its source; later
    ones byte by byte with that first one."""

    def __init__(self, models):
        self.models, self.seen = models, {}

    def check(self, side, version, path):
        got = digest(path)
        key = (side, version)
        if key not in self.seen:
            import torch

            a = torch.load(path, weights_only=True, mmap=True)
            b = torch.load(self.models[version - 1], weights_only=True, mmap=True)
            same = list(a) == list(b) and all(
                a[k].dtype == b[k].dtype and torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8))
                for k in a
            )
            if not same:
                sys.exit(f"{side}: v{version} is not bit-exact")
            self.seen[key] = got
        elif self.seen[key] != got:
            sys.exit(f"{side}: v{version} differs from its first checkout")


def one_round(side, workdir, repo, bare, env, dvc, checker):
    out = {}
    clone = os.path.join(workdir, f"clone-{side}")
    shutil.rmtree(clone, ignore_errors=True)
    out["clone_s"], out["clone_rss"] = run(["git", "clone", "-q", bare, clone], workdir, env, timed=True)
    if side == "dvc":  # dvc pull runs inside the clone
        seconds, rss = run([dvc, "pull", "-q"], clone, env, timed=True)
        out["clone_s"] += seconds
        out["clone_rss"] = max(out["clone_rss"], rss)
    out["clone_status_s"] = status_clean(clone, env, side, dvc)
    checker.check(side, 3, os.path.join(clone, "model.pt"))
    shutil.rmtree(clone, ignore_errors=True)
    for version in (1, 3):
        cmds = [["git", "checkout", "-q", f"v{version}"]] + (
            [[dvc, "checkout", "-q"]] if side == "dvc" else []
        )
        time.sleep(1.1)  # the previous step's files and index age past the racy window
        out[f"checkout_v{version}_s"], out[f"checkout_v{version}_rss"] = run(cmds, repo, env, timed=True)
        out[f"checkout_v{version}_status_s"] = status_clean(repo, env, side, dvc)
        checker.check(side, version, os.path.join(repo, "model.pt"))
    return out


def load_average():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--dvc", default=shutil.which("dvc"), help="the dvc program (a separate venv is fine)")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--baseline", help="source folder of an older git-theta, run as side 'before'")
    args = ap.parse_args()
    sides = [s for s in args.sides.split(",") if s != "dvc" or args.dvc]
    if args.baseline:
        sides.insert(1, "before")
    if "dvc" in args.sides and not args.dvc:
        print("dvc not found (--dvc PATH): DVC left out", file=sys.stderr)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="theta-bench-checkout-"))
    os.makedirs(workdir, exist_ok=True)
    models = make_models(workdir, args.scale)
    checker = Checker(models)
    repos = {}
    for side in sides:
        env = isolated_env(os.path.join(workdir, f"home-{side}"), args.dvc if side == "dvc" else None)
        if side == "before":
            env["PYTHONPATH"] = os.path.abspath(args.baseline)
        elif side == "theta":
            env["PYTHONPATH"] = os.path.join(HERE, "..") + os.pathsep + env.get("PYTHONPATH", "")
        repos[side] = (*setup_side(side, workdir, models, env, args.dvc), env)
        print(f"set up {side}", file=sys.stderr)
    results = {side: [] for side in sides}
    loads = []
    for r in range(args.rounds):
        for side in sides if r % 2 == 0 else reversed(sides):  # interleaved, order alternating
            repo, bare, env = repos[side]
            loads.append(float(load_average()))
            results[side].append(one_round(side, workdir, repo, bare, env, args.dvc, checker))
            print(f"round {r + 1}/{args.rounds} {side}: {results[side][-1]}", file=sys.stderr)

    def med(side, key):
        return statistics.median(x[key] for x in results[side])

    size = os.path.getsize(models[0])
    print(
        f"\nGPT-2 ({args.scale}) {size / 1e6:.0f} MB, medians of {args.rounds} interleaved rounds, load average"
    )
    print(f"during the runs {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores\n")
    head = "".join(f"{s:>10}" for s in sides)
    ratios = "".join(f"{'/ ' + s:>9}" for s in sides if s != "theta")
    print(f"{'':<34}{head}{ratios}")
    for step in STEPS:
        for what, key, unit, scale in (
            ("time", f"{step}_s", "s", 1),
            ("git status after", f"{step}_status_s", "s", 1),
            ("peak RSS", f"{step}_rss", "MB", 1e6),
        ):
            vals = {s: med(s, key) / scale for s in sides}
            row = "".join(f"{vals[s]:>10.2f}" if unit == "s" else f"{vals[s]:>10.0f}" for s in sides)
            rat = "".join(
                f"{vals['theta'] / vals[s]:>9.2f}" if vals[s] else f"{'-':>9}" for s in sides if s != "theta"
            )
            print(f"{step.replace('_', ' ') + ', ' + what + ' (' + unit + ')':<34}{row}{rat}")
    print(f"\npeak RSS / checkpoint (git-theta): {max(med('theta', f'{s}_rss') for s in STEPS) / size:.2f}")


if __name__ == "__main__":
    main()
