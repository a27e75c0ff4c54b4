"""Block-wise helpers of the sparsifying merges: exact magnitude selection and sparse task vectors.

Work goes block by block (BLOCK elements), so temporaries stay small whatever a tensor's size.
"""

import torch

BLOCK = 1 << 20  # elements per block: temporaries stay small whatever the tensor's size
_BINS = 1 << 16


def blocks(n: int):
    """Slices covering range(n), BLOCK elements each."""
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
    for b in blocks(flat.numel()):
        bits = flat[b].abs().view(torch.int32)
        hist += torch.bincount(bits >> 16, minlength=_BINS)
    from_top = torch.cumsum(hist.flip(0), 0)
    idx = int(torch.searchsorted(from_top, torch.tensor(k, device=flat.device)))
    high = _BINS - 1 - idx
    rank = k - (int(from_top[idx - 1]) if idx else 0)
    low_hist = torch.zeros(_BINS, dtype=torch.int64, device=flat.device)
    for b in blocks(flat.numel()):
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
    for b in blocks(flat.numel()):
        flat[b].mul_(flat[b].abs() >= threshold)
    return tau


class Trimmed:
    """A task vector trimmed at a magnitude threshold: kept dense when most entries survive, else
    as sorted flat positions (int32 where they fit) and values, which at TIES' usual density is
    under half the memory. Consumers read it block by block."""

    def __init__(self, tau: torch.Tensor, threshold: float | None):
        flat = tau.reshape(-1)
        self.n, self.dtype, self.device = flat.numel(), flat.dtype, flat.device
        if threshold is None:
            self.dense = flat
            return
        count = sum(int((flat[b].abs() >= threshold).sum()) for b in blocks(self.n))
        if count * 2 > self.n:
            self.dense = trim_top(tau, 1.0, threshold).reshape(-1)
            return
        self.dense = None
        index_type = torch.int32 if self.n < 2**31 else torch.int64
        idx, val = [], []
        for b in blocks(self.n):
            hit = torch.nonzero(flat[b].abs() >= threshold).reshape(-1)
            val.append(flat[b][hit])
            idx.append((hit + b.start).to(index_type))
        self.idx, self.val = torch.cat(idx), torch.cat(val)

    def block(self, b: slice) -> torch.Tensor:
        """Entries b.start to b.stop of the flat task vector (a view when kept dense)."""
        if self.dense is not None:
            return self.dense[b]
        out = torch.zeros(b.stop - b.start, dtype=self.dtype, device=self.device)
        lo = int(
            torch.searchsorted(self.idx, torch.tensor(b.start, dtype=self.idx.dtype, device=self.device))
        )
        hi = int(torch.searchsorted(self.idx, torch.tensor(b.stop, dtype=self.idx.dtype, device=self.device)))
        out[(self.idx[lo:hi] - b.start).long()] = self.val[lo:hi]
        return out

    def mul_(self, scale: float) -> "Trimmed":
        """Scale the kept entries in place."""
        (self.dense if self.dense is not None else self.val).mul_(scale)
        return self


def flat_block(kept, b: slice) -> torch.Tensor:
    """Entries b of a kept task vector, dense tensor or Trimmed, read as flat."""
    return kept.block(b) if isinstance(kept, Trimmed) else kept.reshape(-1)[b]
