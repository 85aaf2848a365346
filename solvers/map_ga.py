"""MAP-GA (Gutha et al., WACV 2025) with the denoiser in place of the consistency model.

Notation (DESIGN.md, ANCHORS 2.2): levels s_1 > ... > s_N (EDM grid), a small level s_eps
(the consistency model's end point; ``sigma_eps``), lambda = lr_scale (sy^2 + s_eps^2).
Start z = s_1 n.  At level s_t run K ascent steps

    x = D(z, s_t),  z <- z + lambda J^T [ H^T (y - H x) / (sy^2 + s_eps^2) + (D(x, s_eps) - x) / s_eps^2 ],

(J = dD(z, s_t)/dz; one VJP), i.e. gradient ascent in z on log N(y; H x, (sy^2 + s_eps^2) I)
+ log p_eps(x) through x = D(z, s_t), the score of the s_eps-smoothed prior being
(D(x, s_eps) - x)/s_eps^2 (its value only: the chain rule needs no derivative of D(., s_eps)).
Then x = D(z, s_t) and renoise z = x + sqrt(s_{t+1}^2 - s_eps^2) n (x counts as a sample at
level s_eps).  The last x is returned.  ``map_ga_d_np`` drops the prior term.

Fixed point (Gaussian prior N(mu, S)): J is invertible, so the bracket vanishes: x is the MAP
of the problem with noise variance sy^2 + s_eps^2 and prior covariance S + s_eps^2 I, i.e. the
exact MAP up to O(s_eps^2 / sy^2) and O(s_eps^2 / e_min) (both < 4 % of the variances with the
defaults at sy >= 0.01 and e_min >= 3e-4).  Stability: the data part of the step has
curvature <= ||H||^2 ||J||^2 <= ||H||^2 (lambda cancels the noise variance), the prior part
lambda / (e + s_eps^2) J^2 along a prior eigen-direction of variance e: it needs
lambda J^2 / (e_min + s_eps^2) < 2, which holds for small sy (the paper's setting is noiseless,
lambda = s_eps^2) but fails for sy = 0.05 on priors with variances below ~1e-3 at the low
levels: MAP-GA is a small-noise method, which is why ``map_ga_pgdm`` hands over to PGDM at sy.

``map_ga_pgdm`` (noisy tasks): MAP-GA with the prior term on an EDM grid from s_max down to
s = sy, then the last x is renoised to level sy (sqrt(sy^2 - s_eps^2) n) and PGDM
(solvers/pgdm.py: ``pgdm_steps``) runs from sy to 0 on an EDM grid of ``pgdm_steps`` levels
(from sy to ``sigma_min``) with a final step to 0.  With sy below the grid's minimum it is
plain MAP-GA(D).  The number of PGDM steps is not recoverable from the paper; 100 (InverseBench's
PGDM default) is used.

Cost per image: MAP-GA(D): N*K VJPs, N*(2K + 1) NFEs; NP: N*K VJPs, N*(K + 1) NFEs;
MAP-GA(PGDM): the MAP-GA(D) counts plus ``pgdm_steps`` NFEs and VJPs.
"""
from __future__ import annotations

import math

import torch

from dipbench.schedule import clip_to_prior, edm_sigmas, grid
from .base import Solver, data_grad, noise
from .registry import register


def map_ga_loop(z, sigmas, y, op, den, sigma_y, sigma_eps, iters, lr_scale, prior_term, generator,
                next_sigma=None):
    """MAP-GA levels along ``sigmas`` from z (at sigmas[0]); returns (last x, z renoised to next_sigma)."""
    sy2 = float(sigma_y) ** 2
    e2 = float(sigma_eps) ** 2
    lam = lr_scale * (sy2 + e2)
    x = z
    for i, s in enumerate(sigmas):
        for _ in range(iters):
            z = z.detach().requires_grad_(True)
            with torch.enable_grad():
                x = den(z, s)
            xd = x.detach()
            h = -data_grad(op, xd, y) / (sy2 + e2)
            if prior_term:
                with torch.no_grad():
                    h = h + (den(xd, sigma_eps) - xd) / e2
            (g,) = torch.autograd.grad(x, z, grad_outputs=h)
            z = z.detach() + lam * g
        with torch.no_grad():
            x = den(z, s)
        nxt = sigmas[i + 1] if i + 1 < len(sigmas) else next_sigma
        if nxt is not None:
            z = x + math.sqrt(max(nxt ** 2 - e2, 0.0)) * noise(x.shape, generator)
    return x.detach(), z.detach()


class _MAPGA(Solver):
    defaults = dict(steps=20, iters=50, lr_scale=1.0, sigma_eps=0.002, schedule="edm",
                    sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "adjoint"})
    prior_term = True

    def _eps(self, den):
        return max(float(self.p.sigma_eps), float(den.sigma_min))

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
        z = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        x, _ = map_ga_loop(z, sigmas, y, op, den, sigma_y, self._eps(den), p.iters, p.lr_scale,
                           self.prior_term, generator)
        return x


@register("map_ga_d")
class MAPGAD(_MAPGA):
    prior_term = True


@register("map_ga_d_np")
class MAPGADNP(_MAPGA):
    prior_term = False


@register("map_ga_pgdm")
class MAPGAPGDM(_MAPGA):
    defaults = dict(_MAPGA.defaults, pgdm_steps=100, pgdm_eta=1.0, pgdm_weight=1.0)
    needs = frozenset({"forward", "adjoint", "svd"})
    prior_term = True

    def solve(self, y, op, den, sigma_y, generator):
        from .pgdm import pgdm_steps   # written alongside; imported lazily

        p = self.p
        sy = float(sigma_y)
        lo, hi = clip_to_prior(p.sigma_min, p.sigma_max, den)
        if sy <= lo or p.pgdm_steps < 1:
            return super().solve(y, op, den, sigma_y, generator)
        ga = edm_sigmas(p.steps, max(sy, lo), hi, p.rho).tolist()
        z = ga[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        eps = self._eps(den)
        _, z = map_ga_loop(z, ga, y, op, den, sy, eps, p.iters, p.lr_scale, True, generator,
                           next_sigma=sy)
        tail = edm_sigmas(int(p.pgdm_steps), lo, sy, p.rho).tolist() + [0.0]
        return pgdm_steps(z, tail, y, op, den, sy, generator, eta=p.pgdm_eta, weight=p.pgdm_weight)
