#!/usr/bin/env python3
"""Transfers against a real HTTP Git LFS server on 127.0.0.1 (giftless), git-theta vs Git LFS.

For GPT-2-small: push v1, then push v2 (two blocks changed) and count the bytes the server
receives for the second push; clone and check out the newest commit and count the bytes it sends.

    python benchmarks/bench_remote.py [--scale full|small] [--workdir DIR]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from bench_core import isolated_env, make_models  # noqa: E402

from tests.lfs_server import LfsServer, credential_helper  # noqa: E402


def git(args, cwd, env):
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def objects(path):
    root = os.path.join(path, ".git", "lfs", "objects")
    return {f: os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs}


def run_side(side, workdir, v1, v2, server):
    env = isolated_env(os.path.join(workdir, f"home-remote-{side}"))
    git(["config", "--global", "credential.helper", credential_helper()], workdir, env)
    env["GIT_TERMINAL_PROMPT"] = "0"
    repo, bare, clone = (os.path.join(workdir, f"{n}-{side}") for n in ("repo", "bare", "clone"))
    for p in (repo, bare, clone):
        shutil.rmtree(p, ignore_errors=True)
    git(["init", "-q", "--bare", bare], workdir, env)
    git(["init", "-q", repo], workdir, env)
    if side == "lfs":
        git(["lfs", "track", "model.pt"], repo, env)
    else:
        git(["theta", "install"], repo, env)
        git(["theta", "track", "model.pt"], repo, env)
    with open(os.path.join(repo, ".lfsconfig"), "w") as f:
        f.write(f'[lfs]\n\turl = "{server.url("bench", side)}"\n')
    git(["remote", "add", "origin", bare], repo, env)
    out = {}
    for i, v in enumerate((v1, v2)):
        shutil.copyfile(v, os.path.join(repo, "model.pt"))
        before_objects = objects(repo)
        git(["add", "-A"], repo, env)
        git(["commit", "-qm", f"v{i + 1}"], repo, env)
        new_bytes = sum(s for o, s in objects(repo).items() if o not in before_objects)
        up = server.stats()["uploaded"]
        t = time.perf_counter()
        git(["push", "-q", "origin", "main"], repo, env)
        out[f"push_v{i + 1}_s"] = time.perf_counter() - t
        out[f"uploaded_v{i + 1}"] = server.stats()["uploaded"] - up
        out[f"new_objects_v{i + 1}"] = new_bytes
    down = server.stats()["downloaded"]
    t = time.perf_counter()
    git(["clone", "-q", bare, clone], workdir, env)
    out["clone_s"] = time.perf_counter() - t
    out["downloaded"] = server.stats()["downloaded"] - down
    out["clone_objects"] = sum(objects(clone).values())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-")
    os.makedirs(workdir, exist_ok=True)
    v1, v2 = make_models(workdir, args.scale)
    server = LfsServer(os.path.join(workdir, "lfs-server")).start()
    try:
        res = {side: run_side(side, workdir, v1, v2, server) for side in ("lfs", "theta")}
    finally:
        server.stop()
    print(json.dumps(res, indent=1), file=sys.stderr)
    mb = 1e6
    lfs, theta = res["lfs"], res["theta"]
    print(f"\nGPT-2 ({args.scale}), HTTP LFS server on 127.0.0.1 (giftless)\n")
    print(f"{'':<44}{'Git LFS':>12}{'git-theta':>12}")
    print(
        f"{'push v1: bytes uploaded (MB)':<44}{lfs['uploaded_v1'] / mb:>12.1f}{theta['uploaded_v1'] / mb:>12.1f}"
    )
    print(
        f"{'push v2 (two blocks): bytes uploaded (MB)':<44}{lfs['uploaded_v2'] / mb:>12.1f}{theta['uploaded_v2'] / mb:>12.1f}"
    )
    print(
        f"{'  objects new in v2 (MB)':<44}{lfs['new_objects_v2'] / mb:>12.1f}{theta['new_objects_v2'] / mb:>12.1f}"
    )
    print(f"{'push v2 time (s)':<44}{lfs['push_v2_s']:>12.2f}{theta['push_v2_s']:>12.2f}")
    print(
        f"{'clone + checkout: bytes downloaded (MB)':<44}{lfs['downloaded'] / mb:>12.1f}{theta['downloaded'] / mb:>12.1f}"
    )
    print(
        f"{'  newest commit stored tensors (MB)':<44}{lfs['clone_objects'] / mb:>12.1f}{theta['clone_objects'] / mb:>12.1f}"
    )
    print(f"{'clone time (s)':<44}{lfs['clone_s']:>12.2f}{theta['clone_s']:>12.2f}")
    print(
        f"\ngit-theta: v2 upload / new objects = {theta['uploaded_v2'] / theta['new_objects_v2']:.3f}; "
        f"clone download / newest commit's objects = {theta['downloaded'] / theta['clone_objects']:.3f} (target <= 1.05)"
    )


if __name__ == "__main__":
    main()
