"""`make demo`: track a generated GPT-2-shaped safetensors model in a new repository and show storage.

Runs real git, git-lfs and git-theta with an isolated HOME (your git config is not touched):
commit a model, commit a fine-tune of its last two blocks, check both versions out again bit for
bit, clone the repository from a bare remote, and print what each commit stored next to what
plain Git LFS would store (the whole file, every time). Needs numpy and safetensors, not torch.
The repository is kept; the demo prints where it is and how to remove it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np

SCALES = {"tiny": (128, 32, 16, 2), "small": (8192, 512, 256, 4), "medium": (16384, 1024, 512, 8)}
MODEL = "model.safetensors"


def gpt2_state_dict(scale: str = "small", seed: int = 0) -> dict[str, np.ndarray]:
    """A GPT-2-shaped float32 state dict with N(0, 0.02) weights, deterministic for a seed."""
    vocab, positions, width, layers = SCALES[scale]
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).astype(np.float32)

    ones, zeros = (lambda n: np.ones(n, np.float32)), (lambda n: np.zeros(n, np.float32))
    sd = {"wte.weight": normal(vocab, width), "wpe.weight": normal(positions, width)}
    for i in range(layers):
        p = f"h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = ones(width), zeros(width)
        sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = normal(width, 3 * width), zeros(3 * width)
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = normal(width, width), zeros(width)
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = ones(width), zeros(width)
        sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = normal(width, 4 * width), zeros(4 * width)
        sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = normal(4 * width, width), zeros(width)
    sd["ln_f.weight"], sd["ln_f.bias"] = ones(width), zeros(width)
    return sd


def fine_tune_last_blocks(sd: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """The same model with its last two blocks and final norm nudged (a partial fine-tune)."""
    rng = np.random.default_rng(seed)
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("h."))
    prefixes = (f"h.{last}.", f"h.{last - 1}.", "ln_f.")
    return {
        k: (
            (v + rng.standard_normal(v.shape, dtype=np.float32) * np.float32(1e-3)).astype(np.float32)
            if k.startswith(prefixes)
            else v.copy()
        )
        for k, v in sd.items()
    }


def same_bits(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Every tensor equal bit for bit (same names, dtypes, shapes and bytes)."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a
    )


def _tool_env(home: str) -> dict[str, str]:
    """Git's environment: this HOME, and this interpreter's scripts first on PATH (git-theta, its filter)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    bins = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    env["PATH"] = os.pathsep.join(dict.fromkeys([*bins, *env.get("PATH", "").split(os.pathsep)]))
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1")
    return env


def _path_prefix(env: dict[str, str]) -> str:
    """A `PATH=... ` prefix for commands in the kept repository when git-theta is not on the caller's PATH."""
    ours = shutil.which("git-theta", path=env["PATH"])
    if ours is None or shutil.which("git-theta") == ours:
        return ""
    return f'PATH="{os.path.dirname(ours)}:$PATH" '


def _git(args: list[str], cwd: str, env: dict[str, str]) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"demo: git {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return proc.stdout.decode()


def _lfs_bytes(repo: str) -> int:
    """Bytes under the repository's LFS object store."""
    lfs = os.path.join(repo, ".git", "lfs")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(lfs) for f in fs)


def _metadata_entry(text: str, name: str) -> str:
    """One parameter's row in a metadata file (and the object it points to), long hashes shortened."""
    prefix = "[" + json.dumps(name, ensure_ascii=False) + ","
    lines = [line.strip().rstrip(",") for line in text.splitlines()]
    row = next(line for line in lines if line.startswith(prefix))
    fields = json.loads(text)["git_theta"].get("parameters", "")
    wrapped = textwrap.wrap(
        re.sub(r'"([0-9a-f]{12})[0-9a-f]{52}"', r'"\1..."', row),
        104,
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join([f"[{fields}]", *wrapped])


def _block(explanation: str, text: str = "") -> None:
    """One block of output, preceded by a line saying what it shows."""
    print(f"\n# {explanation}")
    if text:
        print(text.rstrip("\n"))


def _set_up(work: str, env: dict[str, str]) -> str:
    """Identity and drivers in the demo's own HOME, and a repository that tracks MODEL."""
    for key, value in (
        ("user.name", "git-theta demo"),
        ("user.email", "demo@example.invalid"),
        ("init.defaultBranch", "main"),
    ):
        _git(["config", "--global", key, value], work, env)
    _git(["lfs", "install", "--skip-repo"], work, env)
    _git(["theta", "install"], work, env)
    repo = os.path.join(work, "repo")
    _git(["init", "-q", repo], work, env)
    _git(["theta", "install", "--scope", "repository"], repo, env)  # the kept repo works from your HOME
    _git(["theta", "track", MODEL], repo, env)
    _git(["commit", "-qm", f"Track {MODEL} with git-theta"], repo, env)
    return repo


def _commit_versions(repo: str, env: dict[str, str], versions) -> list[tuple]:
    """Save and commit each version; return (label, file size, bytes added to the LFS store, metadata size)."""
    from safetensors.numpy import save_file

    rows = []
    for label, sd in versions:
        save_file(sd, os.path.join(repo, MODEL))
        before = _lfs_bytes(repo)
        _git(["add", MODEL], repo, env)
        _git(["commit", "-qm", label], repo, env)
        meta = len(_git(["cat-file", "blob", f"HEAD:{MODEL}"], repo, env).encode())
        rows.append((label, os.path.getsize(os.path.join(repo, MODEL)), _lfs_bytes(repo) - before, meta))
    return rows


def _check_out(repo: str, work: str, env: dict[str, str], v1: dict, v2: dict) -> list[str]:
    """Check out both commits and a fresh clone; exit unless every tensor comes back bit for bit."""
    from safetensors.numpy import load_file

    lines = []
    remote, clone = os.path.join(work, "remote.git"), os.path.join(work, "clone")
    _git(["init", "-q", "--bare", remote], work, env)
    _git(["remote", "add", "origin", remote], repo, env)
    _git(["push", "-q", "origin", "main"], repo, env)
    _git(["clone", "-q", remote, clone], work, env)
    for where, rev, want in (
        (repo, "HEAD~1", v1),
        (repo, "main", v2),
        (clone, None, v2),
    ):
        if rev:
            _git(["checkout", "-q", rev], where, env)
        what = f"git checkout {rev}" if rev else "git clone (a fresh clone of the pushed remote)"
        if not same_bits(load_file(os.path.join(where, MODEL)), want):
            sys.exit(f"demo: {what} did not give back the committed model bit for bit")
        lines.append(f"{what:<48} {len(want)} tensors identical, bit for bit")
    return lines


def _storage_table(rows: list[tuple]) -> str:
    head = f"{'commit':<32}{'checkpoint':>12}{'Git LFS stores':>16}{'git-theta stores':>18}{'metadata in git':>17}"
    out, total_lfs, total_theta = [head], 0, 0
    for label, size, stored, meta in rows:
        total_lfs, total_theta = total_lfs + size, total_theta + stored
        out.append(
            f"{label:<32}{size / 1e6:>10.1f}MB{size / 1e6:>14.1f}MB{stored / 1e6:>16.1f}MB{meta / 1e3:>15.1f}kB"
        )
    out.append(
        f"{'total':<32}{'':>12}{total_lfs / 1e6:>14.1f}MB{total_theta / 1e6:>16.1f}MB"
        f"   ({total_theta / total_lfs:.0%} of Git LFS)"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="small")
    args = ap.parse_args(argv)
    try:
        import safetensors.numpy  # noqa: F401
    except ImportError:
        sys.exit("demo: needs the safetensors package: pip install 'git-theta[safetensors]'")
    work = tempfile.mkdtemp(prefix="git-theta-demo-")
    env = _tool_env(os.path.join(work, "home"))
    os.makedirs(env["HOME"])
    try:
        _run(work, env, args.scale)
    except SystemExit:
        print(f"demo: stopped; its folder is kept, remove it with: rm -rf {work}", file=sys.stderr)
        raise


def _run(work: str, env: dict[str, str], scale: str) -> None:
    """Build the repository in WORK and print each block of the demo."""
    repo = _set_up(work, env)
    v1 = gpt2_state_dict(scale)
    v2 = fine_tune_last_blocks(v1)
    params = sum(v.size for v in v1.values())
    _block(
        f"A GPT-2-shaped model ({scale}: {len(v1)} tensors, {params:,} float32 parameters) goes into the "
        "repository kept at:",
        repo,
    )
    rows = _commit_versions(repo, env, [("initial model", v1), ("fine-tune of the last 2 blocks", v2)])
    _block(
        "The history: tracking the file, the model, then the fine-tune:",
        _git(["log", "--oneline"], repo, env),
    )
    name = max((k for k in v1 if k.endswith("mlp.c_fc.weight")), key=lambda k: int(k.split(".")[1]))
    _block(
        f"Git itself keeps only metadata for {MODEL}; the fine-tune's entry for {name} (LFS object, hash, encoding):",
        _metadata_entry(_git(["cat-file", "blob", f"HEAD:{MODEL}"], repo, env), name),
    )
    _block(
        f"`git diff HEAD~1 HEAD -- {MODEL}`: what the fine-tune changed, how each tensor was stored, by how much:",
        _git(["diff", "HEAD~1", "HEAD", "--", MODEL], repo, env),
    )
    _block(
        "Both commits and a fresh clone, checked out again and read back with safetensors:",
        "\n".join(_check_out(repo, work, env, v1, v2)),
    )
    _block(
        "What each commit stored: Git LFS would keep the whole file each time, git-theta the changed tensors:",
        _storage_table(rows),
    )
    _block(
        "The repository is kept: look around with the first command, delete everything with the second:",
        f"cd {repo} && {_path_prefix(env)}git log -p --ext-diff\nrm -rf {work}",
    )


if __name__ == "__main__":
    main()
