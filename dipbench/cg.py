"""Batched conjugate gradients: one symmetric positive (semi-)definite system per batch item.

Used by the guidance of ``gdm`` (solvers/pgdm.py) and by the exact-MAP reference of the MAP
benchmarks (benchmarks/map_convergence.py).
"""
from __future__ import annotations

from typing import Callable

import torch


def batched_cg(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
               tol: float) -> torch.Tensor:
    """Solve apply(u) = b for every item of the batch (dim 0), starting at u = 0.

    Stops after ``iters`` steps, or once every item's residual is at most ``tol`` times its
    ||b||.  Started at 0, the iterates stay in the Krylov space of b, so a singular but positive
    semi-definite ``apply`` with b in its range gives the minimum-norm solution.  The stop test is
    one host sync per step, cheap next to the operator products.
    """
    dims = tuple(range(1, b.dim()))
    col = (b.shape[0],) + (1,) * (b.dim() - 1)
    u = torch.zeros_like(b)
    res = b.clone()
    d = res.clone()
    rr = (res * res).sum(dims)
    stop = (tol ** 2) * (b * b).sum(dims).clamp_min(1e-30)
    for _ in range(iters):
        ad = apply(d)
        alpha = rr / (d * ad).sum(dims).clamp_min(1e-30)
        u = u + alpha.view(col) * d
        res = res - alpha.view(col) * ad
        rr_new = (res * res).sum(dims)
        if bool((rr_new <= stop).all()):
            break
        d = res + (rr_new / rr.clamp_min(1e-30)).view(col) * d
        rr = rr_new
    return u
