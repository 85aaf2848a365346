"""Latent DAPS (DAPS, Zhang, Chu et al., CVPR'25, latent-diffusion variant: ``LatentDAPS`` in DAPS's
``sampler.py``, configuration ``configs/sampler/latent_edm_daps.yaml`` and the ``ldm`` blocks of
``configs/task/*.yaml``).

The DAPS loop of ``solvers/daps.py`` run on a latent prior (one with ``encode`` / ``decode``): the
annealing over levels sigma_i, the probability-flow ODE for z0-hat and the MCMC all act on latents z;
the likelihood is exp(-||A(decode(z)) - y||^2 / tau^2) with its gradient taken through the decoder
and the operator by autograd; the output is decode(z0^y) of the last level.  Per level sigma_i (the
annealing grid and the z0-hat ODE are those of pixel DAPS):
1. z0-hat: ``ode_steps`` Euler steps of the PF-ODE from sigma_i down to ``ode_sigma_min``;
2. MCMC on z0 started at z0-hat with the score
       s(z) = -clip(grad_z ||A(decode(z)) - y||^2, -c, c) / tau^2 + (z0hat - z) / sigma_i^2,
   c = ``grad_clip`` (DAPS's ``LatentWrapper.gradient`` clamps the latent gradient elementwise to
   [-1, 1]; ``grad_clip=None`` does not clip), run for ``langevin_steps`` steps with the level's
   step size lr_i = lr (1 + i / (annealing_steps + 1) (lr_min_ratio - 1)) by
   * ``mc_algo: hmc`` (DAPS's damped Hamiltonian dynamics): v ~ N(0, I) at the start of each level,
         v <- m v + sqrt(lr_i) s(z) + sqrt(2 (1 - m)) n,   z <- z + sqrt(lr_i) v,   m = ``momentum``;
   * ``mc_algo: langevin``: z <- z + lr_i s(z) + sqrt(2 lr_i) n;
3. z = z0^y + sigma_{i+1} n.
Unlike DAPS's code, NaNs are not replaced by zeros (the pipeline flags them).

Defaults: ``latent_edm_daps.yaml`` (50 annealing levels from sigma_max 10 to sigma_min 0.1, 2 Euler
ODE steps down to 0.001) with the ``ldm`` block of ``configs/task/down_sampling.yaml`` (HMC, 24
steps, lr 1.35e-4, lr_min_ratio 0.023, momentum 0.86, tau 0.01).  Other tasks' ``ldm`` blocks
(steps / lr / lr_min_ratio / momentum): gaussian_blur 35 / 2.70e-6 / 0.95 / 0.95, inpainting (box)
15 / 9.02e-6 / 0.13 / 0.74, inpainting_rand 38 / 8.40e-6 / 0.013 / 0.92, motion_blur 49 / 2.4e-5 /
0.041 / 0.45, hdr 38 / 4.52e-6 / 0.015 / 0.58, nonlinear_blur 80 / 3.71e-6 / 0.024 / 0.91,
phase_retrieval 65 / 2.1e-5 / 0.12 / 0.41 (set per task in config).  ``tau=None`` uses
tau = sqrt(2) sigma_y (the exact likelihood).  The operator needs only a forward map.
"""
from __future__ import annotations

import math

import torch

from .base import Solver, noise
from .daps import daps_annealing_sigmas, daps_x0hat
from .registry import register


class LatentForward:
    """A o decode as a forward-only operator on latents."""
    provides = frozenset({"forward"})
    linear = False

    def __init__(self, op, prior):
        self.op, self.prior = op, prior
        self.x_shape = tuple(prior.shape)

    def __call__(self, z):
        return self.op(self.prior.decode(z))


def require_latent(den):
    if not (hasattr(den, "encode") and hasattr(den, "decode")):
        raise TypeError(f"{type(den).__name__} is not a latent prior (needs encode/decode)")


def latent_fit_grad(op, den, z, y, clip):
    """grad_z ||A(decode(z)) - y||^2 (per sample), clamped elementwise to [-clip, clip] when clip is set."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        loss = ((op(den.decode(z)) - y) ** 2).sum()
        (g,) = torch.autograd.grad(loss, z)
    return g.clamp(-clip, clip) if clip is not None else g


@register("latent_daps")
class LatentDAPS(Solver):
    defaults = dict(annealing_steps=50, ode_steps=2, langevin_steps=24, lr=1.35e-4, lr_min_ratio=0.023,
                    tau=0.01, sigma_max=10.0, sigma_min=0.1, ode_sigma_min=0.001, rho=7.0, ode_to_zero=False,
                    mc_algo="hmc", momentum=0.86, grad_clip=1.0)
    needs = frozenset({"forward"})

    def mcmc(self, z0hat, y, op, den, sigma, tau, lr, generator):
        p = self.p
        z = z0hat.clone()
        hmc = p.mc_algo == "hmc"
        v = noise(z.shape, generator) if hmc else None
        for _ in range(p.langevin_steps):
            score = -latent_fit_grad(op, den, z, y, p.grad_clip) / tau ** 2 + (z0hat - z) / sigma ** 2
            n = noise(z.shape, generator)
            if hmc:
                v = p.momentum * v + math.sqrt(lr) * score + math.sqrt(2 * (1 - p.momentum)) * n
                z = z + math.sqrt(lr) * v
            else:
                z = z + lr * score + math.sqrt(2 * lr) * n
        return z

    @torch.no_grad()
    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        p = self.p
        if p.mc_algo not in ("hmc", "langevin"):
            raise ValueError(f"latent_daps: mc_algo must be 'hmc' or 'langevin', got {p.mc_algo!r}")
        tau = p.tau if p.tau is not None else math.sqrt(2.0) * max(float(sigma_y), 1e-3)
        sigmas = daps_annealing_sigmas(p.annealing_steps, p.sigma_min, p.sigma_max, p.rho, den)
        n_sched = p.annealing_steps + 1
        z = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        z0y = z
        for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            z0hat = daps_x0hat(den, z, s, p.ode_steps, p.ode_sigma_min, p.rho, p.ode_to_zero)
            lr = p.lr * (1.0 + (i / n_sched) * (p.lr_min_ratio - 1.0))
            z0y = self.mcmc(z0hat, y, op, den, s, tau, lr, generator)
            z = z0y + s_next * noise(z0y.shape, generator) if s_next > 0 else z0y
        return den.decode(z0y)
