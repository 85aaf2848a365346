"""DPS (Chung et al., ICLR'23) in VE form.

Per step sigma_t -> sigma_s:  x0 = D(x_t, sigma_t), clipped to [-1, 1] when ``clip`` (DPS's
``clip_denoised: True``; the clamp also cuts the gradient on saturated entries, as in DPS);
x' = ancestral step (VE DDIM with eta = 1, i.e. the DDPM posterior q(x_s | x_t, x0): DPS's learned
"learned_range" variance is a property of its network and has no analogue for a denoiser D, so the
fixed posterior variance is used); then

    x_s = x' - zeta / (sqrt(abar_t) sqrt(abar_s)) * grad_{x_t} ||y - A(x0)||,

the VE form of DPS's VP step -zeta grad_{x_t^VP} ||y - A(x0)|| (abar = 1/(1+sigma^2)).
The norm is the *plain* (not squared) Euclidean norm, as in DPS, but taken **per image**: DPS's
code takes one norm of the whole batch tensor, which couples the images of a batch (the step of
each image then depends on the others' residuals); here each image's step is
zeta * grad ||y_b - A(x0_b)||, i.e. DPS run with batch size 1 -- which is how DPS's own
``sample_condition.py`` runs it (its data loader has batch size 1).  ``batch_norm=True`` reproduces
DPS's sampler on a batch: one norm of the whole batch residual (parity/records: dps batched).

Forward operator only: the gradient goes through A by autograd, so nonlinear tasks work.
zeta per task in DPS's configs (FFHQ, sigma_y = 0.05): super-resolution 0.3, Gaussian deblur 0.3,
motion deblur 0.3, nonlinear deblur 0.3, inpainting 0.5, phase retrieval 1.0; the default here is
0.3, set ``zeta`` per task in config.  1000 steps on ADM's linear schedule.  Cost: 1 NFE + 1 VJP
per step.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, noise
from .diffusion_steps import ddim_step, denoise_vjp, vp_step_to_ve
from .registry import register


def dps_grad(op, den, x, sigma, y, clip: bool, batch_norm: bool = False):
    """(x0 (detached, clipped if asked), grad_x sum_b ||y_b - A(x0_b)||); with ``batch_norm`` the
    gradient of the norm of the whole batch residual (DPS's code on a batch)."""
    xg, x0 = denoise_vjp(den, x, sigma)
    with torch.enable_grad():
        x0c = x0.clamp(-1.0, 1.0) if clip else x0
        r = (y - op(x0c)).reshape(y.shape[0], -1)
        norm = r.norm() if batch_norm else r.norm(dim=1).sum()
        (g,) = torch.autograd.grad(norm, xg)
    return x0c.detach(), g


@register("dps")
class DPS(Solver):
    defaults = dict(steps=1000, zeta=0.3, clip=True, eta=1.0, batch_norm=False, schedule="vp_uniform",
                    sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward"})

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        x = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        for st, ss in zip(sigmas[:-1], sigmas[1:]):
            x0, g = dps_grad(op, den, x, st, y, p.clip, p.batch_norm)
            with torch.no_grad():
                x = ddim_step(x, x0, st, ss, p.eta, generator) - p.zeta * vp_step_to_ve(st, ss) * g
        return x.detach()
