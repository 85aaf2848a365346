"""PSLD (Rout et al., NeurIPS'23): posterior sampling with latent diffusion, VE form.

DPS in latent space plus PSLD's "gluing" term.  Per step sigma_t -> sigma_s with z0 = D(z_t, sigma_t),
x0 = decode(z0):
    z_s = DDPM step(z_t, z0)
          - omega / (sqrt(abar_t) sqrt(abar_s)) * grad_{z_t} ||y - A x0||
          - gamma / (sqrt(abar_t) sqrt(abar_s)) * grad_{z_t} ||z0 - encode(A^T y + (I - A^T A) x0)||,
the VP->VE conversion of the VP-code steps being the same as DPS's (ANCHORS 1).  The gluing term
asks z0 to be a fixed point of "replace the measured part of x0 by the measurement, re-encode"; it
uses A^T, so the operator needs an adjoint (PSLD uses it for inpainting-type operators, where
A^T A is a projection).  Both norms are plain (unsquared), per image.  Output decode(z) at sigma = 0.
Defaults (PSLD paper / its Stable-Diffusion scripts): 1000 DDPM steps on ADM's linear schedule,
omega = 1, gamma = 0.1.  Cost: 1 NFE + 1 VJP per step.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, noise
from .diffusion_steps import ddim_step, denoise_vjp, vp_step_to_ve
from .latent_daps import require_latent
from .registry import register


@register("psld")
class PSLD(Solver):
    defaults = dict(steps=1000, omega=1.0, gamma=0.1, eta=1.0, schedule="vp_uniform", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "adjoint"})

    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        b = y.shape[0]
        z = sigmas[0] * noise((b,) + tuple(den.shape), generator)
        aty = op.adjoint(y)
        for st, ss in zip(sigmas[:-1], sigmas[1:]):
            zg, z0 = denoise_vjp(den, z, st)
            with torch.enable_grad():
                x0 = den.decode(z0)
                fit = (y - op(x0)).reshape(b, -1).norm(dim=1).sum()
                glued = den.encode(aty + x0 - op.adjoint(op(x0)))
                glue = (z0 - glued).reshape(b, -1).norm(dim=1).sum()
                (g,) = torch.autograd.grad(p.omega * fit + p.gamma * glue, zg)
            with torch.no_grad():
                z = ddim_step(z, z0.detach(), st, ss, p.eta, generator) - vp_step_to_ve(st, ss) * g
        with torch.no_grad():
            return den.decode(z)
