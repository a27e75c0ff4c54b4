"""Consensus steps of task-arithmetic merges: how the kept task vectors become one, added into
the ancestor as out += scale * combined. Called as consensus(out, kept, weights, scale), where
`weights` (None: 1 each) scale each kept vector first; kept vectors are dense tensors or Trimmed."""

import torch

from git_theta_merge_cli.methods.sparse import Trimmed, blocks, flat_block


def weighted_sum(tensors, scales: list[float]) -> torch.Tensor:
    """sum_i scales_i * tensors_i, accumulated into the first tensor."""
    out = tensors[0].mul_(scales[0])
    for s, t in zip(scales[1:], tensors[1:]):
        out.add_(t, alpha=s)
    return out


def _add_into(total: torch.Tensor, kept, weight: float) -> torch.Tensor:
    """total += weight * kept (block by block for a Trimmed vector)."""
    if not isinstance(kept, Trimmed):
        return total.add_(kept, alpha=weight)
    flat = total.reshape(-1)
    for b in blocks(kept.n):
        flat[b].add_(kept.block(b), alpha=weight)
    return total


class Sum:
    """No consensus: out += scale * sum_i w_i kept_i (task arithmetic, DARE, Breadcrumbs)."""

    def __call__(
        self, out: torch.Tensor, kept: list, weights: list[float] | None, scale: float
    ) -> torch.Tensor:
        weights = weights or [1.0] * len(kept)  # x * 1.0 is x: unweighted sums are unchanged
        if not any(isinstance(k, Trimmed) for k in kept):
            total = weighted_sum(kept, weights)
        else:
            total = torch.zeros_like(out)
            for w, k in zip(weights, kept):
                _add_into(total, k, w)
        return out.add_(total, alpha=scale)


class SignElection:
    """TIES' consensus: gamma = sign(sum_i kept_i), then per entry the mean of the kept_i that are
    non-zero and agree with gamma (0 where none do); out += scale * that mean.

    By default the vote is taken block by block; a given `sign` (the global pre-pass's) replaces
    it; with `fill` the vote is over the whole tensor and where it is zero the majority sign is
    used: `number` (+1/-1) if given, else the sign of this parameter's summed votes (see majority_fill).
    """

    def __init__(self, sign: torch.Tensor | None = None, fill: bool = False, number: float | None = None):
        self.sign, self.fill, self.number = sign, fill, number

    def __call__(
        self, out: torch.Tensor, kept: list, weights: list[float] | None, scale: float
    ) -> torch.Tensor:
        for w, k in zip(weights or (), kept):
            k.mul_(w)
        sign = self.sign
        if sign is None and self.fill:
            whole = slice(0, out.numel())
            total = flat_block(kept[0], whole).clone()
            for k in kept[1:]:
                total.add_(flat_block(k, whole))
            sign = majority_fill(torch.sign(total), self.number)
            del total
        return elect_and_merge_into(out, kept, scale, sign)


def elect_and_merge_into(out: torch.Tensor, taus: list, scale: float, sign=None) -> torch.Tensor:
    """out += scale * disjoint mean, block by block: gamma = sign(sum_i tau_i) (or a given sign);
    per entry the mean of the tau_i that are non-zero and agree with gamma (0 where none do)."""
    flat_out = out.reshape(-1)
    flats = [t if isinstance(t, Trimmed) else t.reshape(-1) for t in taus]
    flat_sign = sign.reshape(-1) if sign is not None else None
    for b in blocks(flat_out.numel()):
        parts = [flat_block(f, b) for f in flats]
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


def majority_fill(gamma: torch.Tensor, number: float | None) -> torch.Tensor:
    """The original plug-in's rule where the elected sign is zero: the given majority sign
    (--x:global_majority_sign=+1/-1), else the sign of this parameter's summed signs (0 -> +1)."""
    if number is not None:
        fill = torch.tensor(float(number), dtype=gamma.dtype, device=gamma.device).sign()
    else:
        fill = torch.sign(torch.sum(gamma))
        fill = torch.where(fill == 0, torch.ones_like(fill), fill)
    return torch.where(gamma == 0, fill, gamma)
