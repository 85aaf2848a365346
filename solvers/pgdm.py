"""PGDM / Pi-GDM (Song, Vahdat, Mardani, Kautz, ICLR'23) in VE form, noisy SVD variant (ANCHORS 2.5).

At level sigma_t with x0 = D(x_t, sigma_t) and J = dD/dx the guidance is

    g = J^T A^T (A A^T + (sigma_y^2 / r_t^2) I)^-1 (y - A x0),   r_t^2 = sigma_t^2 / (1 + sigma_t^2),

computed in the operator's spectral basis: with ybar = U^T y and s the singular values,
A^T (A A^T + c I)^-1 (y - A x0) = V pad( s (ybar_k - s xbar0_k) / (s^2 + c) ),  xbar0 = V^T x0.
(sigma_y = 0 gives the noiseless Pi-GDM vector A^+ (y - A x0).)  One VJP through the denoiser.
The update is the VE DDIM step (DDIM-eta convention) plus ``weight * g``: the VP-code update
sqrt(abar_{t-1}) sqrt(abar_t) w grad_{x_t^VP} used by RED-diff's Pi-GDM is exactly weight w in VE
coordinates (ANCHORS 1), so the default weight is 1.

Official code is not public.  Defaults follow MGPS's re-implementation of the noisy SVD form
(`sampler/pgdm.yaml`: 1000 steps, DDIM eta = 1, start from pure noise), the reference for this
variant; the DDPM grid is ADM's linear schedule with uniform skip (``vp_uniform``).  Cost per step:
1 NFE + 1 VJP.

``pgdm_steps`` is the reusable loop (also used by ``map_ga_pgdm``): it starts from a given x at
sigmas[0] and runs down the grid; a trailing 0 in ``sigmas`` makes the last step return x0 + g.
"""
from __future__ import annotations

import torch

from dipbench.cg import batched_cg
from dipbench.schedule import grid
from .base import Solver, noise
from .diffusion_steps import ddim_step, denoise_vjp
from .registry import register


def pgdm_guidance_vector(op, x0, y, sigma_t: float, sigma_y: float) -> torch.Tensor:
    """A^T (A A^T + (sigma_y^2 / r_t^2) I)^-1 (y - A x0) through the operator's SVD."""
    s = op.singulars()
    k = s.numel()
    r2 = sigma_t ** 2 / (1.0 + sigma_t ** 2)
    c = float(sigma_y) ** 2 / r2
    resid = op.Ut(y)[:, :k] - s * op.Vt(x0)[:, :k]
    return op.V(op.pad_x(s * resid / (s ** 2 + c))).reshape(x0.shape)


def cg_guidance_vector(op, x0, y, sigma_t: float, sigma_y: float, iters: int = 50,
                       tol: float = 1e-6) -> torch.Tensor:
    """The same vector as ``pgdm_guidance_vector`` without an SVD: u = (A A^T + c I)^-1 r by
    conjugate gradients (per batch item, A and A^T only), then A^T u.  For c = 0 and r in the
    range of A, CG started at 0 stays in range(A) and reaches the minimum-norm solution, so A^T u
    = A^+ r as in the noiseless Pi-GDM."""
    r2 = sigma_t ** 2 / (1.0 + sigma_t ** 2)
    c = float(sigma_y) ** 2 / r2
    u = batched_cg(lambda v: op(op.adjoint(v)) + c * v, y - op(x0), iters, tol)
    return op.adjoint(u).reshape(x0.shape)


def pgdm_steps(x, sigmas, y, op, den, sigma_y, generator, eta: float = 1.0, weight: float = 1.0,
               guidance=pgdm_guidance_vector):
    """Run PGDM from x (at sigmas[0]) down the descending grid ``sigmas``; returns the last state.

    sigmas: a sequence of floats; a final 0 means the last step returns x0 + weight * g (clean).
    """
    sigmas = [float(v) for v in sigmas]
    x = x.detach()
    for st, ss in zip(sigmas[:-1], sigmas[1:]):
        xg, x0 = denoise_vjp(den, x, st)
        h = guidance(op, x0.detach(), y, st, sigma_y)
        (g,) = torch.autograd.grad(x0, xg, grad_outputs=h)
        with torch.no_grad():
            x = ddim_step(x, x0.detach(), st, ss, eta, generator) + weight * g
    return x.detach()


@register("pgdm")
class PGDM(Solver):
    defaults = dict(steps=1000, eta=1.0, weight=1.0, schedule="vp_uniform", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "svd"})

    def guidance(self, op, x0, y, sigma_t, sigma_y):
        return pgdm_guidance_vector(op, x0, y, sigma_t, sigma_y)

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        x = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        return pgdm_steps(x, sigmas, y, op, den, sigma_y, generator, p.eta, p.weight,
                          guidance=self.guidance)


@register("gdm")
class GDM(PGDM):
    """Pi-GDM for operators with an adjoint but no SVD: the guidance's linear solve by conjugate
    gradients (``cg_guidance_vector``, ``cg_iters`` steps at most); equal to ``pgdm`` where both
    apply (tests/test_samplers.py)."""
    defaults = dict(PGDM.defaults, cg_iters=50)
    needs = frozenset({"forward", "adjoint"})

    def guidance(self, op, x0, y, sigma_t, sigma_y):
        return cg_guidance_vector(op, x0, y, sigma_t, sigma_y, iters=self.p.cg_iters)
