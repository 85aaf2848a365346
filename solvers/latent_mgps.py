"""Latent MGPS: midpoint guidance posterior sampling (solvers/mgps.py) run on a latent diffusion prior.

The MGPS paper's LDM experiments (Tables 3 and 10: "the LDM of Rombach et al. (2022) with the VQ4
autoencoder") run the same algorithm in latent space: the variational midpoint steps, the bridge
and the warm start act on latents z, and the likelihood is read through the decoder,
log g(z) = -||y - A(decode(z))||^2 / (2 sigma_y^2), the gradient taken by autograd through the
decoder and the operator; the output is decode(z0-hat).  That is how the MGPS code runs it
(MGPS@7839182 test_images.py: for an "_ldm" dataset the potential and the operator are composed
with the model's differentiable decode, and the final sample is decoded).  Here: the MGPS loop on
the forward-only operator A o decode (``LatentForward``, as latent_daps does), then decode.

Differences from pixel MGPS, from the MGPS code's ``ffhq_ldm`` context (configs/experiments/
sampler/mgps.yaml), as defaults:
* midpoint: alpha = 1 while the next timestep t' <= 500 (``alpha_switch``), else ``alpha`` = 0.5
  (its rule "i <= 500: 1" is evaluated on t', the argument of its tmid_fn); with 300 steps the
  midpoint is the next timestep itself below t' = 500, i.e. the variational step targets x_{t'}
  directly (the bridge from x_l to x_{t'} is then the identity);
* gradient steps per outer step (loop index i, same rule order as pixel MGPS): i <= 10: 2;
  i >= n - 5: 20; i % 10 == 0: 10; else 5;
* the DDPM grid is the prior's own schedule when it has one (``den.table``, sigma per training
  timestep: the LDM's sqrt-linear betas; MGPS reads each model's alphas_cumprod), else ADM's
  linear schedule as for pixel MGPS.
Kept from pixel MGPS: 300 steps, Adam lr 3e-2, and the omission of the warm-start x_1 step
(threshold 700 in the image configs; see solvers/mgps.py).

Checked on the analytic latent prior (priors/latent_gaussian.py, exact pixel posterior) in
tests/test_latent_mgps.py, and against pixel MGPS: with an identity decoder the two are the same
computation, so they agree to float rounding.
Cost per image: as MGPS (denoiser NFE/VJP in latent space); decoder passes are not counted.
"""
from __future__ import annotations

import math

import torch

from .diffusion_steps import clamp_sigmas
from .latent_daps import LatentForward, require_latent
from .mgps import MGPS
from .registry import register


@register("latent_mgps")
class LatentMGPS(MGPS):
    defaults = dict(MGPS.defaults, grad_steps=5, grad_steps_first=20, first_window=5, grad_steps_last=2,
                    last_window=10, grad_steps_every=10, every=10, alpha_low=1.0, alpha_switch=500)

    def midpoint(self, tp: int) -> int:
        a = self.p.alpha_low if tp <= self.p.alpha_switch else self.p.alpha
        return min(max(int(math.floor(a * tp)), 1), tp)

    def grid(self, den):
        table = getattr(den, "table", None)
        if table is None:
            return super().grid(den)
        table = torch.as_tensor(table, dtype=torch.float64).reshape(-1)
        ts = torch.linspace(0, len(table) - 1, self.p.steps).long()
        full = torch.cat([torch.zeros(1, dtype=torch.float64), table])     # index 0 = clean
        return ts.tolist(), clamp_sigmas(full, den).tolist()

    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        z = super().solve(y, LatentForward(op, den), den, sigma_y, generator)
        with torch.no_grad():
            return den.decode(z)
