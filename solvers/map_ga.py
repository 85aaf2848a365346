"""MAP-GA (Gutha, Vinuesa, Azizpour, WACV 2025), Algorithm 2 and its no-prior variant, with the
consistency model (``map_ga``, ``map_ga_np``: the paper's "MAP-GA denotes the default Algorithm 2")
or with the denoiser in its place (``map_ga_d``, ``map_ga_d_np``).  Algorithm 3 (MAP-GA without
the prior term, then PGDM) is in solvers/map_ga_pgdm.py.

Notation: levels tau_1 > ... > tau_N (EDM grid), eps the level of the one-step estimate (the
consistency model's end point, ``consistency_sigma_min``; for the D variants ``sigma_eps``), and
x_hat(z, tau) the one-step clean estimate: f(z, tau), the consistency map (``den.consistency``),
or D(z, tau), the denoiser.  Step lambda = lr_scale (sy^2 + eps^2).  Start z = tau_1 n.  At level
tau_t run K ascent steps

    x = x_hat(z, tau_t),
    z <- z + lambda (dx/dz)^T [ H^T (y - H x) / (sy^2 + eps^2) + (D(x, eps) - x) / eps^2 ],

(one VJP through x_hat), i.e. gradient ascent in z on log N(y; H x, (sy^2 + eps^2) I) + log p_eps(x)
through x = x_hat(z, tau_t), the score of the eps-smoothed prior being (D(x, eps) - x) / eps^2
(the denoiser at eps; its value only: the chain rule needs no derivative of D(., eps)).  The paper
uses both networks: "the pre-trained class-conditional denoiser from [10] and the consistency
model from [22]".  Then x = x_hat(z, tau_t) and renoise z = x + sqrt(tau_{t+1}^2 - eps^2) n (x counts
as a sample at level eps, as in the consistency model's multistep sampler).  The last x is
returned.  NP variants drop the prior term ("MAP-GA(NP)").

What it converges to on a Gaussian prior N(mu, S) (tests/test_map_ga.py).  Both maps are affine
with an invertible linear part C (consistency: C = Q diag(sqrt((lam + eps^2)/(lam + tau^2))) Q^T,
priors/gaussian.py; denoiser: J = S (S + tau^2)^-1), so the gradient vanishes exactly when the
bracket does:
* with the prior term, x is then the MAP of the problem with noise variance v = sy^2 + eps^2 and
  prior N(mu, S + eps^2 I) ("the eps-MAP", computable exactly); it differs from the exact MAP by
  O(eps^2 / sy^2) and O(eps^2 / lam_min) (< 4 % of the variances for sy >= 0.01, lam_min >= 3e-4);
* without it (NP), the ascent is least squares in z: from z_0 it converges to
  z* = z_0 + (H C)^+ (y - H x(z_0)), i.e. x* = x_0 + C (H C)^+ (y - H x_0), the point of
  {x : H x = P_range(H) y} nearest to the level's starting estimate x_0 in the C^-2 metric (at the
  last level tau_N = eps, C = I: the Euclidean projection of x_0 onto the data-consistent set).
  It fits the noise (H x = y where y is in range(H)); its null-space part is whatever the
  renoising chain carried, a prior sample's, not the MAP's.
How far K steps get: the ascent's curvature in z is C (H^T H / v + (S + eps^2)^-1) C; with the
consistency map the prior part is diag(1 / (lam + tau^2)), so lambda times it is
lr_scale v / (lam + tau^2) <= 1 for noiseless problems (v = eps^2 <= tau^2): the paper's setting
is always stable, and so is any sy with sy^2 < lam_min + tau_N^2; at sy = 0.05 and tau_N = eps it is
not on image priors with tiny variances (MAP-GA is a small-noise method; Algorithm 3 drops the
prior term for noisy tasks).  The data part lambda C H^T H C / v has norm <= ||H||^2 max C^2 <= 1.
Directions the data determine therefore converge in a few steps at the last levels; directions
only the prior controls (the null space of H) have lambda-curvature v / (lam + tau^2), tiny for
large lam: there K steps do not reach the MAP and the renoising chain decides (measured in the
tests).  With the denoiser J = lam / (lam + tau^2) shrinks such directions towards mu at every
level instead.

Oracle initialisation (MAP-GA Table 2: "we create a sample at t = 0.5 via x_0.5 = x_0 + 0.5 eta and
initialize Algorithm 2 with z = x_0.5, and tau_n = 0.5"): ``solve(..., init=(x_sigma, sigma))``
starts from z = x_sigma on an EDM grid of the same N levels from sigma down (``grid_from``).

Cost per image (NFE / VJP; consistency calls are counted in the totals and as ``cm_nfe`` /
``cm_vjp``, solvers/counting.py): prior variants N*(2K + 1) NFEs (N*(K + 1) of them consistency
calls for ``map_ga``) and N*K VJPs; NP variants N*(K + 1) NFEs and N*K VJPs.
"""
from __future__ import annotations

import math

import torch

from .base import Solver, data_grad, noise
from .pgdm import check_init, grid_from
from .registry import register


def map_ga_loop(z, sigmas, y, op, den, sigma_y, sigma_eps, iters, lr_scale, prior_term, generator,
                next_sigma=None, x_hat=None, trace=None):
    """MAP-GA levels along ``sigmas`` from z (at sigmas[0]); returns (last x, z renoised to next_sigma).

    x_hat: the one-step estimate (z, sigma) -> x (default: the denoiser ``den``); the prior term
    always uses the denoiser at sigma_eps.  trace: optional list; per level a dict with the level,
    the data residual ||H x - y|| / sqrt(m) and the ascent objective's data and prior parts, mean
    over the batch (benchmarks/diagnose_map.py)."""
    x_hat = den if x_hat is None else x_hat
    sy2 = float(sigma_y) ** 2
    e2 = float(sigma_eps) ** 2
    lam = lr_scale * (sy2 + e2)
    x = z
    for i, s in enumerate(sigmas):
        for _ in range(iters):
            z = z.detach().requires_grad_(True)
            with torch.enable_grad():
                x = x_hat(z, s)
            xd = x.detach()
            h = -data_grad(op, xd, y) / (sy2 + e2)
            if prior_term:
                with torch.no_grad():
                    h = h + (den(xd, sigma_eps) - xd) / e2
            (g,) = torch.autograd.grad(x, z, grad_outputs=h)
            z = z.detach() + lam * g
        with torch.no_grad():
            x = x_hat(z, s)
        if trace is not None:
            trace.append(_level_stats(s, x, y, op))
        nxt = sigmas[i + 1] if i + 1 < len(sigmas) else next_sigma
        if nxt is not None:
            z = x + math.sqrt(max(nxt ** 2 - e2, 0.0)) * noise(x.shape, generator)
    return x.detach(), z.detach()


def _level_stats(s, x, y, op) -> dict:
    with torch.no_grad():
        r = (op(x) - y).reshape(y.shape[0], -1)
        return dict(sigma=float(s), residual=float((r.norm(dim=1) / math.sqrt(r.shape[1])).mean()),
                    x_min=float(x.min()), x_max=float(x.max()))


class _MAPGA(Solver):
    defaults = dict(steps=20, iters=50, lr_scale=1.0, sigma_eps=0.002, schedule="edm",
                    sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "adjoint"})
    prior_term = True
    needs_consistency = False      # True: x_hat is the prior's consistency map f(z, sigma)
    accepts_init = True

    def _eps(self, den):
        if self.needs_consistency:
            return float(consistency_of(den, type(self).__name__)[1])
        return max(float(self.p.sigma_eps), float(den.sigma_min))

    def _x_hat(self, den):
        return consistency_of(den, type(self).__name__)[0] if self.needs_consistency else den

    def solve(self, y, op, den, sigma_y, generator, init=None, trace=None):
        p = self.p
        x_hat, eps = self._x_hat(den), self._eps(den)
        if init is None:
            sigmas = grid_from(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho)
            z = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        else:
            z, s0 = check_init(init, y, den)
            sigmas = grid_from(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho, s0)
        x, _ = map_ga_loop(z, sigmas, y, op, den, sigma_y, eps, p.iters, p.lr_scale,
                           self.prior_term, generator, x_hat=x_hat, trace=trace)
        return x


def consistency_of(den, who: str):
    """(f, eps): the prior's consistency map and its end level; a clear error when it has none."""
    f = getattr(den, "consistency", None)
    if f is None:
        raise TypeError(f"{who} needs a consistency model f(x, sigma): the prior "
                        f"{type(getattr(den, 'inner', den)).__name__} has no `consistency`; give the "
                        f"dataset one (config `datasets.<name>.consistency: {{name: cm_imagenet64}}`) "
                        f"or use the denoiser variant (map_ga_d, map_ga_d_np, map_ga_d_pgdm)")
    return f, float(getattr(den, "consistency_sigma_min"))


@register("map_ga")
class MAPGA(_MAPGA):
    """Algorithm 2 with the consistency model (the paper's default method)."""
    defaults = {k: v for k, v in _MAPGA.defaults.items() if k != "sigma_eps"}
    prior_term = True
    needs_consistency = True


@register("map_ga_np")
class MAPGANP(_MAPGA):
    """Algorithm 2 without the prior term, with the consistency model ("MAP-GA(NP)")."""
    defaults = {k: v for k, v in _MAPGA.defaults.items() if k != "sigma_eps"}
    prior_term = False
    needs_consistency = True


@register("map_ga_d")
class MAPGAD(_MAPGA):
    """Algorithm 2 with the denoiser in place of the consistency model."""
    prior_term = True


@register("map_ga_d_np")
class MAPGADNP(_MAPGA):
    """Algorithm 2 without the prior term, denoiser in place of the consistency model."""
    prior_term = False
