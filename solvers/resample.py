"""ReSample (Song, Kwon, Zhang, Hu, Qu, Shen, ICLR'24): latent DDIM with hard data consistency and
stochastic resampling, VE form.

Latent DDIM (eta = 0) on ADM's linear schedule; every ``every`` steps, once sigma_t is below the
level ``start_sigma`` (ReSample skips the early, noisy steps), hard data consistency on the
z0 = D(z_t, sigma_t) estimate:
* ``pixel_opt = False`` (latent optimisation): ``iters`` gradient steps on ||y - A(decode(z))||^2 / 2
  from z0 (autograd through the decoder), step ``lr``;
* ``pixel_opt = True`` (pixel-space optimisation, ReSample's cheaper variant): ``iters`` gradient steps
  on ||y - A x||^2 / 2 from x = decode(z0) with step ``lr_pixel``, then z0^y = encode(x);
then stochastic resampling of z_s around the unconditional DDIM proposal z'_s:
    z_s ~ N(z0^y, sigma_s^2 I) N(z'_s, c_s^2 I)  (normalised),  c_s^2 = gamma sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2,
i.e. mean (c_s^2 z0^y + sigma_s^2 z'_s) / (sigma_s^2 + c_s^2), variance sigma_s^2 c_s^2 / (sigma_s^2 + c_s^2)
-- the VE form of ReSample's Proposition (VP: N(sqrt(abar) z0^y, (1 - abar) I) times N(z', s_t^2 I) with
s_t^2 = gamma (1 - abar_{t-1}) / abar_t (1 - abar_t / abar_{t-1})); our reading of its VP variance is
the DDPM posterior variance scaled by gamma.  The last step returns decode of the consistent z0^y
when the last step is a consistency step, else decode(z0).
Defaults (ReSample paper / repository): 500 DDIM steps, gamma = 40, consistency every 10 steps after
the first half (start_sigma = sigma at t = 500), 100 inner steps (latent lr 1e-2 here; the paper stops
its inner loop early once the residual reaches the noise level, not reproduced).
Needs only a forward operator (pixel_opt uses the adjoint when there is one, autograd otherwise).
"""
from __future__ import annotations

import math

import torch

from dipbench.schedule import grid
from .base import Solver, data_grad, noise
from .diffusion_steps import ddim_step, vp_sigmas_at
from .latent_daps import require_latent
from .registry import register


@register("resample")
class ReSample(Solver):
    defaults = dict(steps=500, gamma=40.0, every=10, start_sigma=float(vp_sigmas_at(500)), iters=100,
                    lr=1e-2, lr_pixel=0.5, pixel_opt=False, schedule="vp_uniform", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward"})

    def consistency(self, z0, y, op, den):
        p = self.p
        if p.pixel_opt:
            x = den.decode(z0)
            for _ in range(p.iters):
                x = x - p.lr_pixel * data_grad(op, x, y)
            return den.encode(x)
        z = z0.detach().clone().requires_grad_(True)
        for _ in range(p.iters):
            with torch.enable_grad():
                loss = 0.5 * ((y - op(den.decode(z))) ** 2).sum()
                (g,) = torch.autograd.grad(loss, z)
            z = (z - p.lr * g).detach().requires_grad_(True)
        return z.detach()

    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
        z = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        z0 = z
        for i, (st, ss) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            with torch.no_grad():
                z0 = den(z, st)
            proposal = ddim_step(z, z0, st, ss, 0.0, generator)
            last = ss <= 0
            if st <= p.start_sigma and (i % p.every == 0 or last):
                z0 = self.consistency(z0, y, op, den)
                if last:
                    break
                c2 = p.gamma * ss ** 2 * (st ** 2 - ss ** 2) / st ** 2
                mean = (c2 * z0 + ss ** 2 * proposal) / (ss ** 2 + c2)
                z = mean + math.sqrt(ss ** 2 * c2 / (ss ** 2 + c2)) * noise(z.shape, generator)
            else:
                z = proposal
        with torch.no_grad():
            return den.decode(z0)
