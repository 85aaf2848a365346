"""DDRM (Kawar et al. 2022) in VE form, in the operator's spectral basis.

x_bar = V^T x, y_bar_i = (U^T y)_i / s_i.  Step sigma_t -> sigma_s with x0 = D(x_t, sigma_t),
eps_bar = V^T (x_t - x0) / sigma_t, per coefficient:
  null space (i >= k):     x0_i + sigma_s (sqrt(1-eta^2) eps_i + eta z)
  s_i sigma_s < sigma_y:   x0_i + sqrt(1-eta^2) sigma_s s_i (y_bar_i - x0_i) / sigma_y + eta sigma_s z
  s_i sigma_s >= sigma_y:  (1-eta_b) x0_i + eta_b y_bar_i + sqrt(sigma_s^2 - eta_b^2 sigma_y^2/s_i^2) z
Initialisation at sigma_T: y_bar_i + sqrt(sigma_T^2 - sigma_y^2/s_i^2) z where s_i sigma_T > sigma_y,
else sigma_T z.  The final step goes to sigma = 0.  One NFE per step, no VJP.

Singular values an operator zeroed (e.g. a blur's values below its threshold) are null space here:
the operator does not report them.  DDRM's code keeps them in its singular-value vector as 0 and sends
them through the "less noisy than y" branch, which with s_i = 0 adds sqrt(1-eta^2) sigma_s (U^T y)_i /
sigma_y -- a coefficient of y that holds only measurement noise, the same draw in every sample -- to
the coefficient (parity/records: ddrm on gauss8_deblur_ddrm).  ``zero_singulars="observed"``
reproduces that (for operators whose U^T y has coefficients beyond the k reported singular values,
aligned with V^T's); the default ``"null"`` treats them as unobserved.
Defaults: eta = 0.85, eta_b = 1, 20 steps on the uniform-skip VP schedule (DDRM's README).
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, noise
from .registry import register


@register("ddrm")
class DDRM(Solver):
    defaults = dict(steps=20, eta=0.85, eta_b=1.0, zero_singulars="null", schedule="vp_uniform",
                    sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "adjoint", "svd"})

    @torch.no_grad()
    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        s = op.singulars()
        k = s.numel()
        b, n = y.shape[0], op.n
        sy = float(sigma_y)
        uty = op.Ut(y)
        ybar = uty[:, :k] / s
        if p.zero_singulars not in ("null", "observed"):
            raise ValueError(f"ddrm: zero_singulars must be 'null' or 'observed', got {p.zero_singulars!r}")
        k0 = min(uty.shape[1], n) if p.zero_singulars == "observed" and sy > 0 else k
        z = lambda: noise((b, n), generator)  # noqa: E731

        st = sigmas[0]
        xb = st * z()
        informative = s * st > sy
        init = ybar + (st ** 2 - sy ** 2 / s ** 2).clamp_min(0).sqrt() * xb[:, :k] / st
        xb[:, :k] = torch.where(informative, init, xb[:, :k])
        x = op.V(xb)
        out = x
        for st, ss in zip(sigmas[:-1], sigmas[1:]):
            x0 = den(x, st)
            x0b = op.Vt(x0)
            eps = (op.Vt(x) - x0b) / st
            zz = z()
            nb = x0b + ss * ((1 - p.eta ** 2) ** 0.5 * eps + p.eta * zz)      # null space default
            x0k, ek, zk = x0b[:, :k], eps[:, :k], zz[:, :k]
            if sy > 0:
                less = x0k + (1 - p.eta ** 2) ** 0.5 * ss * s * (ybar - x0k) / sy + p.eta * ss * zk
            else:
                less = x0k + ss * ((1 - p.eta ** 2) ** 0.5 * ek + p.eta * zk)
            more = ((1 - p.eta_b) * x0k + p.eta_b * ybar
                    + (ss ** 2 - p.eta_b ** 2 * sy ** 2 / s ** 2).clamp_min(0).sqrt() * zk)
            nb[:, :k] = torch.where(s * ss < sy, less, more)
            if k0 > k:      # zeroed singular values through DDRM's "less noisy" branch with s = 0
                nb[:, k:k0] = (x0b[:, k:k0] + (1 - p.eta ** 2) ** 0.5 * ss * uty[:, k:k0] / sy
                               + p.eta * ss * zz[:, k:k0])
            x = op.V(nb)
            out = x
        return out
