"""DDNM / DDNM+ (Wang, Yu, Zhang, ICLR'23) in VE form, in the operator's spectral basis.

Per step sigma_t -> sigma_s:  x0 = D(x_t, sigma_t), eps = (x_t - x0) / sigma_t (from the *uncorrected*
x0, as in DDNM), then the range-null correction x0' = x0 - Lambda A^+ (A x0 - y).  In spectral
coordinates (xbar = V^T x, ybar_i = (U^T y)_i / s_i) the correction of coefficient i < k is
    xbar0'_i = xbar0_i + lambda_i (ybar_i - xbar0_i),
and the next state is built per coefficient (DDRM-eta convention, eta = ``eta``):
* null space (i >= k):        xbar0_i + sigma_s (sqrt(1 - eta^2) eps_i + eta z)          (plain DDNM)
* sigma_y = 0:                xbar0'_i + sigma_s (sqrt(1 - eta^2) eps_i + eta z),  lambda = 1
* DDNM+ (sigma_y > 0), s_i sigma_s >= sigma_y: lambda_i = 1; x0' carries noise of std sigma_y / s_i,
  so fresh noise of the remaining std r_i = sqrt(sigma_s^2 - sigma_y^2 / s_i^2) is added, with
  no eps term:             xbar0'_i + r_i z
* DDNM+, s_i sigma_s < sigma_y: lambda_i = s_i sigma_s sqrt(1 - eta^2) / sigma_y, whose injected
  y-noise (std sigma_s sqrt(1 - eta^2)) replaces the eps part:   xbar0'_i + eta sigma_s z.
This is DDNM+'s Lambda / Lambda_noise rule (DDNM@00b58ea functions/svd_operators.py, e.g.
``Inpainting.Lambda_noise``: on the range space the eps coefficient is 0 and the fresh-noise
coefficient is sqrt(sigma_t^2 - a^2 sigma_y^2 / s^2), resp. sigma_t eta) written with VE sigmas (the
code states it with VP sigma and a = sqrt(abar)).  At the last step (sigma_s = 0) lambda = 0 on the
whole range space, so DDNM+'s output is the uncorrected x0 there; plain DDNM (sigma_y = 0) projects.
No time-travel (DDNM's defaults travel_length = travel_repeat = 1 mean none).  Output: the final x0'
(the step to sigma = 0).
Defaults: eta = 0.85, 100 steps (DDNM `configs/celeba_hq.yml`, README).  1 NFE per step, no VJP.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, noise
from .registry import register


@register("ddnm")
class DDNM(Solver):
    defaults = dict(steps=100, eta=0.85, schedule="vp_uniform", sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "svd"})

    @torch.no_grad()
    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        s = op.singulars()
        k = s.numel()
        b, n = y.shape[0], op.n
        sy = float(sigma_y)
        ybar = op.Ut(y)[:, :k] / s
        c_eps, c_z = (1 - p.eta ** 2) ** 0.5, p.eta
        x = sigmas[0] * noise((b,) + tuple(den.shape), generator)
        out = x
        for st, ss in zip(sigmas[:-1], sigmas[1:]):
            x0 = den(x, st)
            x0b = op.Vt(x0)
            eps = (op.Vt(x) - x0b) / st
            x0k = x0b[:, :k]
            if sy > 0:
                full = s * ss >= sy
                lam = torch.where(full, torch.ones_like(s), s * ss * c_eps / sy)
            else:
                full = torch.ones_like(s, dtype=torch.bool)
                lam = torch.ones_like(s)
            corr = x0b.clone()
            corr[:, :k] = x0k + lam * (ybar - x0k)
            if ss <= 0:
                out = op.V(corr).reshape(x.shape)
                break
            z = noise((b, n), generator)
            nb = corr + ss * (c_eps * eps + c_z * z)                     # null space and sigma_y = 0
            if sy > 0:
                r = (ss ** 2 - sy ** 2 / s ** 2).clamp_min(0).sqrt()
                rng = torch.where(full, corr[:, :k] + r * z[:, :k],
                                  corr[:, :k] + c_z * ss * z[:, :k])
                nb[:, :k] = rng
            x = op.V(nb).reshape(x.shape)
            out = x
        return out
