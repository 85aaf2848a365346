"""Sliced Wasserstein-1 distance between two sample sets (the MGPS toy metric).

Random directions: standard normal vectors from a seeded generator, normalised to unit length; both
sets are projected on each direction and the 1-D Wasserstein-1 distance is computed exactly from
the empirical quantile functions (sorted samples; unequal sizes handled by merging the CDF grids,
which equals ``scipy.stats.wasserstein_distance``); the result is the mean over slices.
"""
from __future__ import annotations

import torch


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical measures of the columns of a (n, S) and b (m, S): returns (S,)."""
    a, _ = torch.sort(a.double(), dim=0)
    b, _ = torch.sort(b.double(), dim=0)
    n, m = a.shape[0], b.shape[0]
    if n == m:
        return (a - b).abs().mean(0)
    # integrate |F_a^-1(u) - F_b^-1(u)| over the merged quantile grid
    qa = torch.arange(1, n + 1, dtype=torch.float64) / n
    qb = torch.arange(1, m + 1, dtype=torch.float64) / m
    q, _ = torch.sort(torch.cat([qa, qb]))
    q = torch.unique_consecutive(q)
    du = torch.diff(torch.cat([torch.zeros(1, dtype=torch.float64), q]))
    mid = q - du / 2
    ia = torch.clamp(torch.ceil(mid * n).long() - 1, 0, n - 1)
    ib = torch.clamp(torch.ceil(mid * m).long() - 1, 0, m - 1)
    return ((a[ia] - b[ib]).abs() * du.unsqueeze(1)).sum(0)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_slices: int = 100,
                       generator: torch.Generator | None = None) -> float:
    """Mean over ``n_slices`` random unit directions of the 1-D W1 between the projected samples.

    x: (n, ...) and y: (m, ...) sample sets (flattened per sample).  ``generator`` seeds the
    directions (a fixed default seed when None, so the value is reproducible).
    """
    x = x.reshape(x.shape[0], -1).double().cpu()
    y = y.reshape(y.shape[0], -1).double().cpu()
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape[1]} vs {y.shape[1]}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    d = torch.randn((x.shape[1], n_slices), generator=g, dtype=torch.float64, device=g.device).cpu()
    d = d / d.norm(dim=0, keepdim=True)
    return float(wasserstein_1d(x @ d, y @ d).mean())
