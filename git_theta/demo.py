"""`make demo`: track a generated GPT-2-shaped model in a temporary repository and show storage.

Runs real git, git-lfs and git-theta with an isolated HOME (your git config is not touched):
commit a model, commit a fine-tune of its last two blocks, check both versions out again bit for
bit, clone the repository from a bare remote, and print what each commit stored next to what
plain Git LFS would store (the whole file, every time).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

SCALES = {"tiny": (128, 32, 16, 2), "small": (8192, 512, 256, 4), "medium": (16384, 1024, 512, 8)}


def gpt2_state_dict(scale: str = "small", seed: int = 0):
    """A GPT-2-shaped state dict with N(0, 0.02) weights, deterministic for a seed."""
    import torch

    vocab, positions, width, layers = SCALES[scale]
    g = torch.Generator().manual_seed(seed)
    sd = {
        "wte.weight": torch.randn(vocab, width, generator=g) * 0.02,
        "wpe.weight": torch.randn(positions, width, generator=g) * 0.02,
    }
    for i in range(layers):
        p = f"h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = torch.ones(width), torch.zeros(width)
        sd[p + "attn.c_attn.weight"] = torch.randn(width, 3 * width, generator=g) * 0.02
        sd[p + "attn.c_attn.bias"] = torch.zeros(3 * width)
        sd[p + "attn.c_proj.weight"] = torch.randn(width, width, generator=g) * 0.02
        sd[p + "attn.c_proj.bias"] = torch.zeros(width)
        sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = torch.ones(width), torch.zeros(width)
        sd[p + "mlp.c_fc.weight"] = torch.randn(width, 4 * width, generator=g) * 0.02
        sd[p + "mlp.c_fc.bias"] = torch.zeros(4 * width)
        sd[p + "mlp.c_proj.weight"] = torch.randn(4 * width, width, generator=g) * 0.02
        sd[p + "mlp.c_proj.bias"] = torch.zeros(width)
    sd["ln_f.weight"], sd["ln_f.bias"] = torch.ones(width), torch.zeros(width)
    return sd


def fine_tune_last_blocks(sd: dict, seed: int = 1) -> dict:
    """The same model with its last two blocks and final norm nudged (a partial fine-tune)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("h."))
    prefixes = (f"h.{last}.", f"h.{last - 1}.", "ln_f.")
    return {
        k: v + torch.randn(v.shape, generator=g) * 1e-3 if k.startswith(prefixes) else v.clone()
        for k, v in sd.items()
    }


def write_models(v1_path: str, v2_path: str, scale: str = "small") -> None:
    import torch

    sd = gpt2_state_dict(scale)
    torch.save(sd, v1_path)
    torch.save(fine_tune_last_blocks(sd), v2_path)


def _git(args, cwd, env, capture=False):
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True)
    if proc.returncode != 0:
        sys.exit(f"demo: git {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return proc.stdout.decode() if capture else None


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="small")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    import torch

    work = tempfile.mkdtemp(prefix="git-theta-demo-")
    home = os.path.join(work, "home")
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1")
    try:
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
        print(f"demo repository: {repo}")
        _git(["theta", "track", "model.pt"], repo, env)
        _git(["commit", "-qm", "Track model.pt with git-theta"], repo, env)
        path = os.path.join(repo, "model.pt")
        v1 = gpt2_state_dict(args.scale)
        v2 = fine_tune_last_blocks(v1)
        lfs_dir = os.path.join(repo, ".git", "lfs", "objects")
        rows = []
        for label, sd in (("initial model", v1), ("fine-tune of the last 2 blocks", v2)):
            torch.save(sd, path)
            before = _dir_bytes(lfs_dir) if os.path.isdir(lfs_dir) else 0
            _git(["add", "model.pt"], repo, env)
            _git(["commit", "-qm", label], repo, env)
            meta = len(_git(["cat-file", "blob", "HEAD:model.pt"], repo, env, capture=True).encode())
            rows.append((label, os.path.getsize(path), _dir_bytes(lfs_dir) - before, meta))
        print(_git(["log", "--oneline", "-3"], repo, env, capture=True), end="")
        print(_git(["show", "--stat", "HEAD"], repo, env, capture=True).splitlines()[-1])
        print("\nwhat `git diff HEAD~1` shows:")
        print(_git(["diff", "HEAD~1", "--", "model.pt"], repo, env, capture=True), end="")
        _git(["checkout", "-q", "HEAD~1"], repo, env)
        back = torch.load(path, weights_only=True)
        assert all(torch.equal(back[k], v1[k]) for k in v1), "v1 did not round-trip"
        _git(["checkout", "-q", "main"], repo, env)
        back = torch.load(path, weights_only=True)
        assert all(torch.equal(back[k], v2[k]) for k in v2), "v2 did not round-trip"
        remote = os.path.join(work, "remote.git")
        _git(["init", "-q", "--bare", remote], work, env)
        _git(["remote", "add", "origin", remote], repo, env)
        _git(["push", "-q", "origin", "main"], repo, env)
        clone = os.path.join(work, "clone")
        _git(["clone", "-q", remote, clone], work, env)
        back = torch.load(os.path.join(clone, "model.pt"), weights_only=True)
        assert all(torch.equal(back[k], v2[k]) for k in v2), "clone did not round-trip"
        print("\nchecked out both commits and a fresh clone: every tensor identical, bit for bit\n")
        print(
            f"{'commit':<34}{'checkpoint':>12}{'Git LFS stores':>16}{'git-theta stores':>18}{'metadata in git':>17}"
        )
        total_lfs = total_theta = 0
        for label, size, stored, meta in rows:
            total_lfs += size
            total_theta += stored
            print(
                f"{label:<34}{size / 1e6:>10.1f}MB{size / 1e6:>14.1f}MB{stored / 1e6:>16.1f}MB{meta / 1e3:>15.1f}kB"
            )
        print(
            f"{'total':<34}{'':>12}{total_lfs / 1e6:>14.1f}MB{total_theta / 1e6:>16.1f}MB"
            f"   ({total_theta / total_lfs:.0%} of Git LFS)"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
