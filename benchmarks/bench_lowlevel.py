#!/usr/bin/env python3
"""Low-level code against its plain alternative, side by side, on the workloads it serves.

- checkout: a GPT-2-small checkout (the filter decoding ~500 MB of tensors into the file) as is,
  with np.empty in place of git_theta.memory.empty (through a sitecustomize module: numpy asks
  for huge pages itself from 4 MiB), and with plain writes instead of O_DIRECT
  (GIT_THETA_DIRECT_IO=0);
- add: `git add` of it into a fresh repository (encoding and writing every LFS object), plain
  writes (its default) against O_DIRECT (GIT_THETA_DIRECT_IO=1);
- decode: every stored tensor of it decoded, codec._chunks (a zero-copy msgpack parser) against
  the same parse on msgpack's Unpacker (which copies each chunk); also the parse alone in
  instructions (valgrind's callgrind: repeatable under load), next to a child that only starts;
- zip: zipio's reader over the .pt archive, 200 times (with --baseline, an older reader too).

Sides run interleaved, their order alternating, for --rounds rounds. Before each checkout and add
`sync` and, as root, the page cache is dropped (objects are read from the disk, as after a
reboot); decode and zip run warm (CPU-bound). Printed: medians (and the middle half of the
rounds) of wall time and of CPU time (user + system of the command and its children), the
median peak memory (largest process's max RSS, GNU time), and the disk's mount options (online
discard matters for O_DIRECT and rewritten files). With --baseline DIR (an older git-theta
source folder) that tree runs as one more side, to compare code since removed.

    python benchmarks/bench_lowlevel.py [--rounds 15] [--workdir DIR]
        [--only checkout,add,decode,zip] [--baseline DIR] [--no-drop]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_checkout import isolated_env, make_models  # noqa: E402

SOURCE = os.path.dirname(HERE)
NP_EMPTY = (
    "import numpy as _np\nfrom git_theta import memory as _m\n"
    "_m.empty = lambda shape, dtype: _np.empty(shape, dtype=dtype)\n"
)


def timed(cmd, cwd, env, drop: bool) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS bytes) of one command, after sync (and dropping the page cache)."""
    os.sync()
    if drop:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "TIMES %U %S %M", *cmd], cwd=cwd, env=env, capture_output=True)
    wall = time.perf_counter() - start
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{p.stderr.decode()[-2000:]}")
    user, system, rss = re.findall(rb"TIMES ([\d.]+) ([\d.]+) (\d+)", p.stderr)[-1]
    return wall, float(user) + float(system), int(rss) * 1024


def git(args, cwd, env) -> None:
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True)
    if p.returncode:
        sys.exit(f"git {' '.join(args)} failed in {cwd}:\n{p.stderr.decode()[-2000:]}")


def side_env(base: dict, workdir: str, tree: str, patch: str = "", **settings: str) -> dict:
    """The environment of a side: git-theta from `tree`, a sitecustomize `patch`, settings."""
    path = [tree]
    if patch:
        folder = os.path.join(workdir, f"site-{zlib.crc32(patch.encode()):08x}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "sitecustomize.py"), "w") as f:
            f.write(patch)
        path.append(folder)
    return {**base, "PYTHONPATH": os.pathsep.join(path), **settings}


def interleaved(sides: dict, rounds: int):
    """(name, environment) of every side, every round, the order reversed every other round."""
    for r in range(rounds):
        yield from (list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1])


def theta_repo(path: str, env: dict) -> None:
    shutil.rmtree(path, ignore_errors=True)
    git(["init", "-q", path], "/", env)
    git(["theta", "install"], path, env)
    git(["theta", "track", "model.pt"], path, env)
    git(["add", "-A"], path, env)
    git(["commit", "-qm", "setup"], path, env)


def bench_checkout(workdir, models, sides, rounds, drop) -> dict:
    """Each side checks out v1 and v2 of GPT-2-small in turn, objects local."""
    repo = os.path.join(workdir, "repo-checkout")
    env = next(iter(sides.values()))
    theta_repo(repo, env)
    for i, model in enumerate(models, 1):
        shutil.copyfile(model, os.path.join(repo, "model.pt"))
        git(["add", "model.pt"], repo, env)
        git(["commit", "-qm", f"v{i}"], repo, env)
        git(["tag", f"v{i}"], repo, env)
    results = {name: [] for name in sides}
    version = 2
    for name, side in interleaved(sides, rounds):
        version = 3 - version  # the other one: every checkout rewrites the file
        time.sleep(1.1)  # past the index's racy second
        results[name].append(timed(["git", "checkout", "-q", f"v{version}"], repo, side, drop))
    return results


def bench_add(workdir, models, sides, rounds, drop) -> dict:
    """Each side stages GPT-2-small into a fresh repository (every object written anew)."""
    results = {name: [] for name in sides}
    repo = os.path.join(workdir, "repo-add")
    for name, side in interleaved(sides, rounds):
        theta_repo(repo, side)
        shutil.copyfile(models[0], os.path.join(repo, "model.pt"))
        results[name].append(timed(["git", "add", "model.pt"], repo, side, drop))
    shutil.rmtree(repo, ignore_errors=True)
    return results


UNPACKER_CHUNKS = """
import msgpack
from git_theta import codec


def _chunks(view, ends=None):
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(1, len(view)))
    unpacker.feed(view)
    out = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        out[key] = memoryview(unpacker.unpack())
        if ends is not None:
            ends[key] = unpacker.tell()
    return out


codec._chunks = _chunks
"""


def encode_blobs(workdir: str, model: str, env: dict) -> str:
    """GPT-2-small's tensors in their stored form, one file each, and an index of them."""
    folder = os.path.join(workdir, "blobs")
    if not os.path.exists(os.path.join(folder, "index.json")):
        child = [sys.executable, __file__, "_encode", model, folder]
        subprocess.run(child, env=env, check=True)
    return folder


def child(mode: str, source: str, folder: str) -> None:
    """Run in a side's own process: encode blobs, decode or parse them all, or read a zip."""
    import json
    import mmap

    if mode == "_encode":
        import torch

        from git_theta import codec
        from git_theta.tensor import RawTensor

        os.makedirs(folder, exist_ok=True)
        index = []
        for i, t in enumerate(torch.load(source, weights_only=True, mmap=True).values()):
            raw = RawTensor(str(t.dtype).removeprefix("torch."), tuple(t.shape), t.numpy().data.cast("B"))
            with open(os.path.join(folder, f"{i}.bin"), "wb") as f:
                codec.encode(raw, f)
            index.append([f"{i}.bin", raw.dtype, list(raw.shape)])
        with open(os.path.join(folder, "index.json"), "w") as f:
            json.dump(index, f)
        return
    if mode == "_start":
        from git_theta import codec  # noqa: F401
        from git_theta.formats import zipio  # noqa: F401

        return
    if mode == "_zip":
        from git_theta.formats import zipio

        with open(source, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for _ in range(200):
                entries = zipio.read_entries(memoryview(data), source)
                del entries
        return
    from git_theta import codec

    with open(os.path.join(folder, "index.json")) as f:
        index = json.load(f)
    for name, dtype, shape in index:
        with open(os.path.join(folder, name), "rb") as f:
            blob = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if mode == "_decode":
            codec.decode(blob, dtype, tuple(shape))
        elif mode == "_parse":
            codec._chunks(memoryview(blob), {})


def bench_calls(mode: str, source: str, folder: str, sides: dict, rounds: int) -> dict:
    """Each side runs `mode` in a child process, the page cache warm (these are CPU-bound)."""
    results = {name: [] for name in sides}
    for name, side in interleaved(sides, rounds):
        results[name].append(timed([sys.executable, __file__, mode, source, folder], "/", side, False))
    return results


def instructions(mode: str, source: str, folder: str, sides: dict, workdir: str) -> None:
    """Instructions each side executes (valgrind's callgrind: repeatable under load), and those
    of a child that only starts up, imports and maps the files (`_start`)."""
    if not shutil.which("valgrind"):
        return
    print(f"  instructions (callgrind), {mode}:")
    first = next(iter(sides.values()))
    for name, side in [("start-up only", first), *sides.items()]:
        out = os.path.join(workdir, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__]
        p = subprocess.run(
            [*cmd, "_start" if name == "start-up only" else mode, source, folder],
            env=side,
            capture_output=True,
        )
        total = re.findall(rb"Collected : (\d+)", p.stderr)
        print(f"    {name:<16} {int(total[-1]) / 1e6 if total else float('nan'):>12.1f} M")


def disk_note(path: str) -> str:
    """The file system and mount options `path` lives on."""
    out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", path], capture_output=True)
    return out.stdout.decode().strip() or "?"


def report(title: str, results: dict) -> None:
    """Medians, and in brackets the middle half of the rounds (25th to 75th percentile)."""
    print(f"\n{title} (medians over {len(next(iter(results.values())))} rounds; [25th-75th percentile])")
    print(f"  {'side':<18} {'wall s':>20} {'CPU s':>20} {'peak MB':>8}")

    def spread(values: list[float]) -> str:
        q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        return f"{statistics.median(values):.3f} [{q[0]:.2f}-{q[2]:.2f}]"

    for name, runs in results.items():
        wall, cpu = (spread([x[i] for x in runs]) for i in (0, 1))
        rss = statistics.median(x[2] for x in runs)
        print(f"  {name:<18} {wall:>20} {cpu:>20} {rss / 1e6:>8.0f}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1].startswith("_"):
        return child(*sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", default="checkout,add,decode,zip")
    ap.add_argument("--baseline", default=None, help="an older git-theta source folder, run as one more side")
    ap.add_argument("--no-drop", action="store_true", help="keep the page cache between runs")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-lowlevel-")
    os.makedirs(workdir, exist_ok=True)
    drop = not args.no_drop and os.geteuid() == 0
    models = make_models(workdir, "full")[:2]
    base = isolated_env(os.path.join(workdir, "home"), None)
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"disk: {disk_note(workdir)}; page cache dropped before each run: {drop}")
    print(f"load average: {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    baseline = {"baseline": side_env(base, workdir, args.baseline)} if args.baseline else {}
    if "checkout" in args.only:
        sides = {
            "as is": side_env(base, workdir, SOURCE),
            "np.empty": side_env(base, workdir, SOURCE, NP_EMPTY),
            "plain writes": side_env(base, workdir, SOURCE, GIT_THETA_DIRECT_IO="0"),
            **baseline,
        }
        report("checkout of GPT-2-small", bench_checkout(workdir, models, sides, args.rounds, drop))
    if "add" in args.only:
        sides = {
            "plain writes": side_env(base, workdir, SOURCE, GIT_THETA_DIRECT_IO="0"),
            "O_DIRECT": side_env(base, workdir, SOURCE, GIT_THETA_DIRECT_IO="1"),
            **baseline,
        }
        report("git add of GPT-2-small", bench_add(workdir, models, sides, args.rounds, drop))
    if "decode" in args.only:
        folder = encode_blobs(workdir, models[0], side_env(base, workdir, SOURCE))
        sides = {
            "hand parser": side_env(base, workdir, SOURCE),
            "msgpack Unpacker": side_env(base, workdir, SOURCE, UNPACKER_CHUNKS),
        }
        report(
            "decode of GPT-2-small's stored tensors", bench_calls("_decode", "", folder, sides, args.rounds)
        )
        instructions("_parse", "", folder, sides, workdir)
    if "zip" in args.only:
        sides = {"as is": side_env(base, workdir, SOURCE), **baseline}
        report("zip reader, GPT-2-small's .pt x200", bench_calls("_zip", models[0], "", sides, args.rounds))
        instructions("_zip", models[0], "", sides, workdir)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
