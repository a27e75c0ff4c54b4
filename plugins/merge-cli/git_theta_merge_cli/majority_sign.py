"""`git-theta-merge-majority-sign`: the global pre-pass of TIES.

The original plug-in's form, `--ties A B C` (task vectors the user already trimmed, tracked by
git-theta), prints "Global Majority Sign is: +1 or -1": the sign of the sum, over every parameter,
of the signs of the summed trimmed vectors; `git-theta-merge-cli --x:global_majority_sign=N`
takes that number. The form below computes more: exact per-model thresholds and per-parameter
signs in a file.

Over whole task vectors (every parameter of each model), find each model's trim threshold (the
magnitude of its `density` share of largest entries, exact, by a two-pass radix selection over
the float32 bit patterns, streaming one parameter at a time), then write per parameter the
elected sign gamma = sign(sum_i trimmed tau_i) to a safetensors file. `git-theta-merge-cli
--merge ties --x:global_majority_sign=FILE` then trims with those thresholds and uses that sign.
"""

import argparse
import json
import sys

import numpy as np
import torch

from git_theta.errors import ThetaError, guarded
from git_theta.git import repo
from git_theta.logs import Progress, get_logger
from git_theta.storage.lfs_store import LfsStore
from git_theta.tensor import RawTensor
from git_theta_merge_cli.sources import GitModel, to_torch

log = get_logger(__name__)
_BINS = 1 << 16


def _magnitude_bits(tau: torch.Tensor) -> np.ndarray:
    """|tau| as float32 bit patterns: for non-negative floats their order is the values' order."""
    return tau.abs().float().cpu().numpy().reshape(-1).view(np.uint32)


def _select(hist: np.ndarray, k: int) -> tuple[int, int]:
    """(bin holding the k-th largest, rank of that element within the bin from the top)."""
    from_top = np.cumsum(hist[::-1])
    idx = int(np.searchsorted(from_top, k))
    before = int(from_top[idx - 1]) if idx else 0
    return _BINS - 1 - idx, k - before


def global_thresholds(models, ancestor, names, density: float, device: str) -> list[float]:
    """Per model, the k-th largest |tau| over all its parameters (k = density * size)."""
    floats = [n for n in names if ancestor.entry(n).dtype.startswith(("float", "bfloat"))]
    total = sum(int(np.prod(ancestor.entry(n).shape)) for n in floats)
    k = max(1, int(round(density * total)))
    high = [np.zeros(_BINS, np.int64) for _ in models]
    taus = lambda n: _task_vectors(models, ancestor, n, device)  # noqa: E731
    for n in floats:
        for i, tau in enumerate(taus(n)):
            high[i] += np.bincount(_magnitude_bits(tau) >> 16, minlength=_BINS)
    picks = [_select(h, k) for h in high]
    low = [np.zeros(_BINS, np.int64) for _ in models]
    for n in floats:
        for i, tau in enumerate(taus(n)):
            bits = _magnitude_bits(tau)
            low[i] += np.bincount(bits[(bits >> 16) == picks[i][0]] & 0xFFFF, minlength=_BINS)
    out = []
    for (hi, rank), lo_hist in zip(picks, low):
        lo, _ = _select(lo_hist, rank)
        out.append(float(np.array([(hi << 16) | lo], dtype=np.uint32).view(np.float32)[0]))
    return out


def _task_vectors(models, ancestor, name, device):
    base = to_torch(ancestor.load(name), device, torch.float32)
    return [to_torch(m.load(name), device, torch.float32).sub_(base) for m in models]


def write_sign_file(
    path: str, signs: dict[str, torch.Tensor], thresholds: list[float], density: float
) -> None:
    from git_theta.formats.safetensors import SafetensorsCheckpoint
    from git_theta.tensor import TensorSpec

    layout = {
        "metadata": {"git_theta_majority_sign": json.dumps({"thresholds": thresholds, "density": density})}
    }
    specs = [TensorSpec(n, "int8", tuple(s.shape)) for n, s in signs.items()]
    tensors = (RawTensor("int8", tuple(s.shape), memoryview(s.numpy().tobytes())) for s in signs.values())
    with open(path, "wb") as f:
        SafetensorsCheckpoint().write(layout, specs, tensors, f, path)


def read_sign_file(path: str, n_models: int) -> dict:
    """{'thresholds': [...], 'sign': name -> tensor} from a pre-pass file; clear errors otherwise."""
    from git_theta_merge_cli.sources import FileTensors

    src = FileTensors(path)
    try:
        raw = json.loads(dict(src.layout["metadata"])["git_theta_majority_sign"])
    except (KeyError, ValueError, TypeError):
        raise ThetaError("not a file written by git-theta-merge-majority-sign", path) from None
    if len(raw["thresholds"]) != n_models:
        raise ThetaError(f"written for {len(raw['thresholds'])} models, merging {n_models}", path)

    def sign(name: str) -> torch.Tensor:
        if name not in src.tensors:
            raise ThetaError(f"has no sign for parameter {name!r}", path)
        return to_torch(src.load(name), "cpu")

    return {"thresholds": raw["thresholds"], "sign": sign}


def global_majority_sign(trimmed: list, device: str = "cpu") -> int:
    """The original's global sign over already-trimmed task vectors: +1 when the signs of the
    per-parameter sums add up to >= 0, else -1 (one parameter at a time in memory)."""
    total = 0.0
    names = trimmed[0].names
    progress = Progress("summing signs", len(names))
    for n in names:
        if trimmed[0].entry(n).dtype.startswith(("float", "bfloat")):
            summed = to_torch(trimmed[0].load(n), device, torch.float32)
            for m in trimmed[1:]:
                summed.add_(to_torch(m.load(n), device, torch.float32))
            total += float(torch.sign(summed).sum().item())
        progress.advance()
    progress.close()
    return 1 if total >= 0 else -1


def _original_form(ns) -> None:
    top = repo.root()
    store = LfsStore.for_cwd(top)
    trimmed = [GitModel(s, top, store) for s in ns.ties]
    names = trimmed[0].names
    for m in trimmed[1:]:
        if sorted(m.names) != sorted(names):
            raise ThetaError(f"{m.spec}: its parameters differ from {trimmed[0].spec}'s")
    for m in trimmed:
        m.ensure_objects()
    print(f"Global Majority Sign is: {global_majority_sign(trimmed, ns.device)}")


def _run(argv: list[str] | None) -> None:
    p = argparse.ArgumentParser(prog="git-theta-merge-majority-sign", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--ties", nargs="+", help="the original's form: TIES-trimmed task vectors; prints the sign"
    )
    p.add_argument("--models", nargs="+")
    p.add_argument("--ancestor")
    p.add_argument("--density", "--x:density", type=float, default=0.2, help="share of each task vector kept")
    p.add_argument("--output", "-o", help="safetensors file to write")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit-concurrency", type=int, default=None, help="accepted for the original's scripts")
    ns = p.parse_args(argv)
    get_logger()
    if ns.ties:
        if ns.models or ns.ancestor or ns.output:
            raise ThetaError("give either --ties (the original's form) or --models/--ancestor/--output")
        _original_form(ns)
        return
    missing = [
        f for f, v in (("--models", ns.models), ("--ancestor", ns.ancestor), ("--output", ns.output)) if not v
    ]
    if missing:
        raise ThetaError(f"missing {', '.join(missing)} (or give --ties TRIMMED... for the original's form)")
    if not 0 < ns.density <= 1:
        raise ThetaError("--density must be in (0, 1]")
    top = repo.root()
    store = LfsStore.for_cwd(top)
    models = [GitModel(s, top, store) for s in ns.models]
    ancestor = GitModel(ns.ancestor, top, store)
    from git_theta_merge_cli.merge import check_inputs
    from git_theta_merge_cli.methods.ties import Ties

    check_inputs(models, ancestor, [], Ties())
    for m in models + [ancestor]:
        m.ensure_objects()
    names = ancestor.names
    thresholds = global_thresholds(models, ancestor, names, ns.density, ns.device)
    signs = {}
    progress = Progress("electing signs", len(names))
    for n in names:
        if ancestor.entry(n).dtype.startswith(("float", "bfloat")):
            taus = [
                t.mul_(t.abs() >= th)
                for t, th in zip(_task_vectors(models, ancestor, n, ns.device), thresholds)
            ]
            total = taus[0]
            for t in taus[1:]:
                total.add_(t)
            signs[n] = torch.sign(total).to(torch.int8).cpu()
        progress.advance()
    progress.close()
    write_sign_file(ns.output, signs, thresholds, ns.density)
    print(
        f"{ns.output}: signs of {len(signs)} parameters; thresholds {', '.join(f'{t:.3g}' for t in thresholds)}"
    )


def main(argv: list[str] | None = None) -> None:
    """`git-theta-merge-majority-sign`, in git-theta's error boundary: a failure is one line, exit 1."""
    sys.exit(guarded(lambda: _run(argv), "git-theta-merge-majority-sign"))


if __name__ == "__main__":
    main()
