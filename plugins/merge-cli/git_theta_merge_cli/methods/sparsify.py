"""Sparsifiers of task vectors: which entries of tau_i a task-arithmetic merge keeps, and how
kept ones are rescaled. Each is called as sparsify(tau, i) for model i, in model order, and may
work on tau in place (it is the model's own tensor)."""

import torch

from git_theta_merge_cli.methods.sparse import Trimmed, kth_largest, threshold_for


class Magnitude:
    """TIES' trim: keep the `density` share of entries largest in magnitude (ties at the threshold
    kept), or those at or above a given per-model threshold; the result is a Trimmed vector,
    sparse when few entries survive."""

    def __init__(self, density: float, thresholds: list[float | None] | None = None):
        self.density, self.thresholds = density, thresholds

    def __call__(self, tau: torch.Tensor, i: int) -> Trimmed:
        given = self.thresholds[i] if self.thresholds else None
        return Trimmed(tau, threshold_for(tau, self.density) if given is None else given)


class Random:
    """DARE's drop: each entry kept with probability 1 - p and rescaled by 1 / (1 - p); masks drawn
    from `generator` on the CPU, one tensor's worth per model, so any device gives the same."""

    def __init__(self, p: float, generator: torch.Generator):
        self.p, self.generator = p, generator

    def __call__(self, tau: torch.Tensor, i: int) -> torch.Tensor:
        keep = (torch.rand(tau.shape, generator=self.generator) >= self.p).to(tau.device)
        return tau.mul_(keep).div_(1.0 - self.p)


class Outliers:
    """Model Breadcrumbs' mask: drop the `gamma` share of largest magnitudes and keep the next
    `density` share (entries at the lower threshold kept)."""

    def __init__(self, gamma: float, density: float):
        self.gamma, self.density = gamma, density

    def __call__(self, tau: torch.Tensor, i: int) -> torch.Tensor:
        n = tau.numel()
        mag = tau.abs()
        hi_k, lo_k = int(round(self.gamma * n)), int(round((self.gamma + self.density) * n))
        keep = torch.ones_like(tau, dtype=torch.bool)
        if hi_k > 0:
            keep &= mag < kth_largest(mag, hi_k)
        if lo_k < n:
            keep &= mag >= kth_largest(mag, max(lo_k, 1))
        return tau.mul_(keep)


class Ranked:
    """DELLA's drop: keep each entry with probability p = density + epsilon * (rank / (n - 1) - 1/2)
    rising with its magnitude rank, rescaled by 1 / p; draws from `generator` on the CPU."""

    def __init__(self, density: float, epsilon: float, generator: torch.Generator):
        self.density, self.epsilon, self.generator = density, epsilon, generator

    def __call__(self, tau: torch.Tensor, i: int) -> torch.Tensor:
        n = tau.numel()
        ranks = torch.empty(n, dtype=torch.float32)
        ranks[torch.argsort(tau.reshape(-1).abs().cpu(), stable=True)] = torch.arange(n, dtype=torch.float32)
        p = self.density + self.epsilon * (ranks / max(n - 1, 1) - 0.5)
        keep = torch.rand(n, generator=self.generator) < p
        scale = (keep / p).reshape(tau.shape).to(tau.device, tau.dtype)
        return tau.mul_(scale)
