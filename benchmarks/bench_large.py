#!/usr/bin/env python3
"""A checkpoint larger than we want in memory: add and check out in low-memory mode.

Generates a Llama-like bf16 safetensors checkpoint of about --size-gb (written tensor by tensor,
never whole in memory), then in a fresh repository with GIT_THETA_LOW_MEMORY=1 times `git add`,
`git commit`, a checkout of another commit and a checkout back, sampling the summed RSS of the
whole process tree (git, the filter, hooks) every 20 ms. Checks the result is bit-exact.

    python benchmarks/bench_large.py [--size-gb 6] [--workdir DIR]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import new_repo  # noqa: E402

WIDTH, FFN, VOCAB = 4096, 11008, 32000


def layout(size_gb: float) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter names and shapes of a Llama-like model of about `size_gb` GB in bf16."""
    per_layer = 4 * WIDTH * WIDTH + 3 * WIDTH * FFN + 2 * WIDTH
    fixed = 2 * VOCAB * WIDTH + WIDTH
    layers = max(1, round((size_gb * 1e9 / 2 - fixed) / per_layer))
    out = [("model.embed_tokens.weight", (VOCAB, WIDTH))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + f"self_attn.{n}_proj.weight", (WIDTH, WIDTH)) for n in "qkvo"]
        out += [(p + "mlp.gate_proj.weight", (FFN, WIDTH)), (p + "mlp.up_proj.weight", (FFN, WIDTH))]
        out += [(p + "mlp.down_proj.weight", (WIDTH, FFN))]
        out += [(p + "input_layernorm.weight", (WIDTH,)), (p + "post_attention_layernorm.weight", (WIDTH,))]
    return out + [("model.norm.weight", (WIDTH,)), ("lm_head.weight", (VOCAB, WIDTH))]


def bf16_block(rng: np.random.Generator, n: int) -> np.ndarray:
    """n bf16 bit patterns of N(0, 0.02) weights (the top half of float32s)."""
    return (rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)).view(np.uint32) >> 16


def write_checkpoint(path: str, size_gb: float, seed: int = 0) -> str:
    """Write the checkpoint block by block; returns the sha256 of the file."""
    params = layout(size_gb)
    header, offset = {}, 0
    for name, shape in params:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    with open(path + ".tmp", "wb") as f:
        for part in (len(head).to_bytes(8, "little"), head):
            f.write(part)
            digest.update(part)
        for _name, shape in params:
            left = int(np.prod(shape))
            while left:
                n = min(left, 1 << 24)
                block = bf16_block(rng, n).astype(np.uint16).tobytes()
                f.write(block)
                digest.update(block)
                left -= n
    os.replace(path + ".tmp", path)
    return digest.hexdigest()


def file_sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            digest.update(block)
    return digest.hexdigest()


def tree_rss(root: int) -> int:
    """Summed resident memory of `root` and all its descendants (bytes)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def measured(args: list[str], cwd: str, env: dict) -> tuple[float, int]:
    """(seconds, peak summed RSS of the process tree) of a command."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{err.decode()}")
    return time.perf_counter() - start, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=6.0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the repository and checkpoint")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-bench-large-")
    os.makedirs(workdir, exist_ok=True)
    repo, env = new_repo("theta", workdir, "large", "*.safetensors")
    env = dict(env, GIT_THETA_LOW_MEMORY="1")
    model = os.path.join(repo, "model.safetensors")
    t0 = time.perf_counter()
    want = write_checkpoint(model, args.size_gb)
    size = os.path.getsize(model)
    largest = max(int(np.prod(s)) * 2 for _, s in layout(args.size_gb))
    print(f"\nbf16 safetensors checkpoint: {size / 1e9:.2f} GB, largest tensor {largest / 1e6:.0f} MB")
    print(f"  generated in {time.perf_counter() - t0:.1f} s\n")
    rows = [("git add", *measured(["git", "add", "model.safetensors"], repo, env))]
    subprocess.run(["git", "commit", "-qm", "large"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "rm", "-q", "model.safetensors"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "removed"], cwd=repo, env=env, check=True)
    rows.append(
        ("git checkout HEAD~1 (writes it)", *measured(["git", "checkout", "-q", "HEAD~1"], repo, env))
    )
    got = file_sha(model)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, env=env, capture_output=True, text=True
    )
    stored = sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, fs in os.walk(os.path.join(repo, ".git", "lfs"))
        for f in fs
    )
    for label, seconds, peak in rows:
        print(f"{label:<34}{seconds:8.1f} s   peak memory {peak / 1e9:5.2f} GB  (target < 1.5 GB)")
    print(f"{'stored (LFS objects)':<34}{stored / 1e9:8.2f} GB")
    print(f"bit-exact after checkout: {got == want}; git status clean: {not status.stdout.strip()}")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)
    if got != want or status.stdout.strip():
        sys.exit(1)


if __name__ == "__main__":
    main()
