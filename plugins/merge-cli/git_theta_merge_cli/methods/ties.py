"""Sign-consensus merges of sparsified task vectors: TIES, DARE-style DELLA, Model Breadcrumbs."""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Arg, Inputs, MergeMethod, task_vectors
from git_theta_merge_cli.methods.linear import LAMBDA

BLOCK = 1 << 20  # elements per block: temporaries stay small whatever the tensor's size
_BINS = 1 << 16


def _blocks(n: int):
    for start in range(0, n, BLOCK):
        yield slice(start, min(n, start + BLOCK))


def kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest entry (k >= 1) of a tensor of non-negative values."""
    flat = values.reshape(-1)
    return float(torch.kthvalue(flat.cpu(), flat.numel() - k + 1).values)


def kth_largest_abs(tau: torch.Tensor, k: int) -> float:
    """The k-th largest |entry| of `tau`, exactly, with O(block) extra memory: a two-pass radix
    selection over the float32 bit patterns of |tau| (their order is the values' order)."""
    flat = tau.reshape(-1)
    if flat.dtype != torch.float32:
        return kth_largest(flat.abs(), k)
    hist = torch.zeros(_BINS, dtype=torch.int64, device=flat.device)
    for b in _blocks(flat.numel()):
        bits = flat[b].abs().view(torch.int32)
        hist += torch.bincount(bits >> 16, minlength=_BINS)
    from_top = torch.cumsum(hist.flip(0), 0)
    idx = int(torch.searchsorted(from_top, torch.tensor(k, device=flat.device)))
    high = _BINS - 1 - idx
    rank = k - (int(from_top[idx - 1]) if idx else 0)
    low_hist = torch.zeros(_BINS, dtype=torch.int64, device=flat.device)
    for b in _blocks(flat.numel()):
        bits = flat[b].abs().view(torch.int32)
        low_hist += torch.bincount(bits[(bits >> 16) == high] & 0xFFFF, minlength=_BINS)
    low_top = torch.cumsum(low_hist.flip(0), 0)
    low = _BINS - 1 - int(torch.searchsorted(low_top, torch.tensor(rank, device=flat.device)))
    return float(torch.tensor([(high << 16) | low], dtype=torch.int32).view(torch.float32))


def threshold_for(tau: torch.Tensor, density: float) -> float | None:
    """Magnitude at or above which entries are kept (None: keep all)."""
    k = int(round(density * tau.numel()))
    if k >= tau.numel():
        return None
    if k <= 0:
        return float("inf")
    return kth_largest_abs(tau, k)


def trim_top(tau: torch.Tensor, density: float, threshold: float | None = None) -> torch.Tensor:
    """Zero all but the `density` share of entries largest in magnitude (in place); ties at the
    threshold are kept. A given `threshold` (global, from the majority-sign pre-pass) wins."""
    threshold = threshold_for(tau, density) if threshold is None else threshold
    if threshold is None:
        return tau
    flat = tau.reshape(-1)
    for b in _blocks(flat.numel()):
        flat[b].mul_(flat[b].abs() >= threshold)
    return tau


def elect_and_merge_into(
    out: torch.Tensor, taus: list[torch.Tensor], scale: float, sign=None
) -> torch.Tensor:
    """out += scale * disjoint mean, block by block: gamma = sign(sum_i tau_i) (or a given sign);
    per entry the mean of the tau_i that are non-zero and agree with gamma (0 where none do)."""
    flat_out = out.reshape(-1)
    flats = [t if isinstance(t, _Trimmed) else t.reshape(-1) for t in taus]
    flat_sign = sign.reshape(-1) if sign is not None else None
    for b in _blocks(flat_out.numel()):
        parts = [f.block(b) if isinstance(f, _Trimmed) else f[b] for f in flats]
        if flat_sign is None:
            total = parts[0].clone()
            for p in parts[1:]:
                total.add_(p)
            gamma = torch.sign(total)
        else:
            gamma = flat_sign[b]
        num = torch.zeros_like(parts[0])
        count = torch.zeros_like(parts[0])
        for p in parts:
            agree = (torch.sign(p) == gamma) & (p != 0)
            num.add_(p * agree)
            count.add_(agree)
        flat_out[b].add_(num.div_(count.clamp_(min=1)), alpha=scale)
    return out


def elect_and_merge(taus: list[torch.Tensor], sign: torch.Tensor | None = None) -> torch.Tensor:
    """The disjoint mean itself (see elect_and_merge_into)."""
    return elect_and_merge_into(torch.zeros_like(taus[0]), taus, 1.0, sign)


def majority_fill(gamma: torch.Tensor, number: float | None) -> torch.Tensor:
    """The original plug-in's rule where the elected sign is zero: the given majority sign
    (--x:global_majority_sign=+1/-1), else the sign of this parameter's summed signs (0 -> +1)."""
    if number is not None:
        fill = torch.tensor(float(number), dtype=gamma.dtype, device=gamma.device).sign()
    else:
        fill = torch.sign(torch.sum(gamma))
        fill = torch.where(fill == 0, torch.ones_like(fill), fill)
    return torch.where(gamma == 0, fill, gamma)


def sign_number(value: str | None) -> float | None:
    """--x:global_majority_sign as the original's number (+1/-1), or None for a file path."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Ties(MergeMethod):
    """TIES-Merging (Yadav et al. 2023): trim each tau_i to its top-`density` entries by magnitude,
    elect gamma = sign(sum_i trimmed tau_i), theta = theta_0 + lambda * disjoint_mean(tau, gamma).

    Trimming and sign election are per parameter (block); with --x:global_majority_sign=FILE
    (written by git-theta-merge-majority-sign) thresholds come from whole task vectors and the
    sign from that pass, as in the paper.

    The original plug-in's form: --aux_data files of task vectors already trimmed by the user (one
    per model); gamma = sign of their sum, where it is zero the majority sign (--x:global_majority_sign
    as a number, +1/-1, else this parameter's), theta = theta_0 + lambda * disjoint mean. lambda
    defaults to 0.1, the original's default.
    """

    name = "ties"
    description = "trim, elect sign, disjoint mean of task vectors"
    args = (
        Arg("merge_lambda", float, 0.1, "scale of the merged task vector"),
        Arg("density", float, 0.2, "share of each task vector kept (top magnitudes)"),
        Arg(
            "global_majority_sign",
            str,
            None,
            "file from git-theta-merge-majority-sign (global trim + sign), or +1/-1 (sign where the vote is 0)",
        ),
    )
    needs_ancestor = True
    aux_kind = "task-vector"
    aux_required = False

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not 0.0 < args["density"] <= 1.0:
            raise ThetaError("--x:density must be in (0, 1]")
        if n_aux and n_aux != n_models:
            raise ThetaError(f"ties: give one --aux_data task vector per model ({n_models}), got {n_aux}")

    streams_models = True  # models arrive one at a time; trimmed task vectors are kept sparse

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return "never" if has_aux else "with-ancestor"  # user-trimmed task vectors need not be zero

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        number = sign_number(args["global_majority_sign"])
        if inputs.aux is not None:
            return self._merge_trimmed(inputs.ancestor, inputs.aux, args["merge_lambda"], number)
        glob = inputs.extra.get("global_majority_sign")
        thresholds = glob["thresholds"] if glob else [None] * len(inputs.models)
        anc = inputs.ancestor
        kept = []
        for i in range(len(inputs.models)):
            tau = inputs.models[i].sub_(anc)  # loaded here, one model at a time
            th = threshold_for(tau, args["density"]) if thresholds[i] is None else thresholds[i]
            kept.append(_Trimmed(tau, th))
            del tau
        sign = glob["sign"](inputs.name).to(anc.device, anc.dtype) if glob else None
        if sign is None and number is not None:
            total = kept[0].block(slice(0, kept[0].n)).clone()
            for k in kept[1:]:
                total.add_(k.block(slice(0, k.n)))
            sign = majority_fill(torch.sign(total), number).reshape(anc.shape)
        return elect_and_merge_into(anc, kept, args["merge_lambda"], sign)

    @staticmethod
    def _merge_trimmed(ancestor, taus, scale: float, number: float | None) -> torch.Tensor:
        """The original's TIES on user-trimmed task vectors (see the class docstring)."""
        total = taus[0].clone()
        for t in taus[1:]:
            total.add_(t)
        sign = majority_fill(torch.sign(total), number)
        del total
        return elect_and_merge_into(ancestor, taus, scale, sign)


class _Trimmed:
    """A trimmed task vector: kept dense when most entries survive, else as sorted flat positions
    (int32 where they fit) and values, which at TIES' usual density is under half the memory."""

    def __init__(self, tau: torch.Tensor, threshold: float | None):
        flat = tau.reshape(-1)
        self.n, self.dtype, self.device = flat.numel(), flat.dtype, flat.device
        if threshold is None:
            self.dense = flat
            return
        count = sum(int((flat[b].abs() >= threshold).sum()) for b in _blocks(self.n))
        if count * 2 > self.n:
            self.dense = trim_top(tau, 1.0, threshold).reshape(-1)
            return
        self.dense = None
        index_type = torch.int32 if self.n < 2**31 else torch.int64
        idx, val = [], []
        for b in _blocks(self.n):
            hit = torch.nonzero(flat[b].abs() >= threshold).reshape(-1)
            val.append(flat[b][hit])
            idx.append((hit + b.start).to(index_type))
        self.idx, self.val = torch.cat(idx), torch.cat(val)

    def block(self, b: slice) -> torch.Tensor:
        if self.dense is not None:
            return self.dense[b]
        out = torch.zeros(b.stop - b.start, dtype=self.dtype, device=self.device)
        lo = int(
            torch.searchsorted(self.idx, torch.tensor(b.start, dtype=self.idx.dtype, device=self.device))
        )
        hi = int(torch.searchsorted(self.idx, torch.tensor(b.stop, dtype=self.idx.dtype, device=self.device)))
        out[(self.idx[lo:hi] - b.start).long()] = self.val[lo:hi]
        return out


class Breadcrumbs(MergeMethod):
    """Model Breadcrumbs (Davari & Belilovsky 2024): in each tau_i drop the `gamma` share of largest
    magnitudes (outliers) and keep the next `density` share; theta = theta_0 + lambda * sum_i masked tau_i."""

    name = "breadcrumbs"
    description = "task arithmetic on task vectors without their largest and smallest entries"
    args = (
        LAMBDA,
        Arg("density", float, 0.9, "share of entries kept after the outliers"),
        Arg("gamma", float, 0.01, "share of the largest-magnitude entries dropped"),
    )
    needs_ancestor = True

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        if not (0 <= args["gamma"] < 1 and 0 < args["density"] <= 1 and args["gamma"] + args["density"] <= 1):
            raise ThetaError("--x:gamma and --x:density must be shares with gamma + density <= 1")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        total = None
        for tau in task_vectors(inputs):
            n = tau.numel()
            mag = tau.abs()
            hi_k, lo_k = int(round(args["gamma"] * n)), int(round((args["gamma"] + args["density"]) * n))
            keep = torch.ones_like(tau, dtype=torch.bool)
            if hi_k > 0:
                keep &= mag < kth_largest(mag, hi_k)
            if lo_k < n:
                keep &= mag >= kth_largest(mag, max(lo_k, 1))
            tau.mul_(keep)
            total = tau if total is None else total.add_(tau)
        return inputs.ancestor.add_(total, alpha=args["merge_lambda"])


class Della(MergeMethod):
    """DELLA-Merging (Deep et al. 2024): drop entries of tau_i at random with keep probability rising with
    magnitude rank, p_keep = density + epsilon * (rank / (n - 1) - 1/2), rescale kept ones by 1/p_keep,
    then elect sign and take the disjoint mean as TIES; theta = theta_0 + lambda * merged."""

    name = "della"
    description = "magnitude-ranked random drop + rescale, then TIES sign election"
    args = (
        LAMBDA,
        Arg("density", float, 0.7, "mean keep probability"),
        Arg("epsilon", float, 0.1, "spread of keep probabilities from smallest to largest magnitude"),
    )
    needs_ancestor = True

    def check(self, n_models, has_ancestor, n_aux, args):
        super().check(n_models, has_ancestor, n_aux, args)
        lo, hi = args["density"] - args["epsilon"] / 2, args["density"] + args["epsilon"] / 2
        if not (0 < lo and hi <= 1):
            raise ThetaError("--x:density -/+ epsilon/2 must stay within (0, 1]")

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        g = inputs.generator()
        taus = []
        for tau in task_vectors(inputs):
            n = tau.numel()
            ranks = torch.empty(n, dtype=torch.float32)
            ranks[torch.argsort(tau.reshape(-1).abs().cpu(), stable=True)] = torch.arange(
                n, dtype=torch.float32
            )
            p = args["density"] + args["epsilon"] * (ranks / max(n - 1, 1) - 0.5)
            keep = torch.rand(n, generator=g) < p
            scale = (keep / p).reshape(tau.shape).to(tau.device, tau.dtype)
            taus.append(tau.mul_(scale))
        return elect_and_merge_into(inputs.ancestor, taus, args["merge_lambda"])
