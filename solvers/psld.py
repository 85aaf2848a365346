"""PSLD (Rout et al., NeurIPS'23): posterior sampling with latent diffusion, VE form.

DPS in latent space plus PSLD's "gluing" term.  Per step sigma_t -> sigma_s with z0 = D(z_t, sigma_t),
x0 = decode(z0):
    z_s = DDIM step(z_t, z0; eta)
          - omega / (sqrt(abar_t) sqrt(abar_s)) * grad_{z_t} ||y - A x0||
          - gamma / (sqrt(abar_t) sqrt(abar_s)) * grad_{z_t} ||z0 - encode(A^+ y + (I - A^+ A) x0)||,
the VP->VE conversion of the VP-code update ``z_prev - grad_{z_t}(error)`` being the same as DPS's.
The gluing term asks z0 to be a fixed point of "replace the measured part of x0 by the measurement,
re-encode".  PSLD writes it with A^T (its analysis assumes A^T A is a projection); its code's
operators pass the pseudo-inverse-like map (mask for inpainting, nearest upsampling for its SR), so
we use A^+ when the operator has an SVD and A^T otherwise (equal for masks).  Both norms are plain
(unsquared) and per image; PSLD's code takes them over the whole batch, which is the same thing with
its scripts' one sample per run.

Time grid (``schedule``): ``ldm_ddim`` (default) is the DDIM grid of latent-diffusion code
(solvers/ldm_ddim.py): the latent model's own VP table (``den.table``) or LDM's linear schedule
(``linear_start``/``linear_end``), timesteps c i + 1, ending at the model's first level sigma(t = 0)
-- PSLD decodes the latent there; ``vp_uniform`` / ``edm`` are the pixel samplers' grids ending at 0.

Reference-reproducing flag: ``noisy_residual`` -- PSLD's code passes A(x0) through the measurement
noiser (fresh N(0, sigma_y^2) noise every step) before taking ||y - A x0||: "y" adds it in y-space,
"image" in the image-shaped measurement of DPS's mask operators (A^T A x0 + n on every pixel,
observed or not, minus A^T y).  Off by default (the paper's algorithm has no such noise).

Defaults (official ``scripts/inverse.py``): 1000 steps, ``--ddim_eta 0`` (eta 0), omega 1, gamma 0.1;
the LDM run scripts use omega 0.1 for inpainting and Gaussian deblurring and 0.9 for SR (set in config).
Cost: 1 NFE + 1 VJP per step.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, noise
from .diffusion_steps import ddim_step, denoise_vjp, vp_step_to_ve
from .latent_daps import require_latent
from .ldm_ddim import ldm_ddim_pairs
from .registry import register


def latent_pairs(p, den):
    """[(sigma_t, sigma_s)] of a latent sampler's schedule parameters (see module docstrings)."""
    if p.schedule == "ldm_ddim":
        return ldm_ddim_pairs(p.steps, den, p.linear_start, p.linear_end)
    sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist() + [0.0]
    return list(zip(sigmas[:-1], sigmas[1:]))


@register("psld")
class PSLD(Solver):
    defaults = dict(steps=1000, omega=1.0, gamma=0.1, eta=0.0, schedule="ldm_ddim", linear_start=0.0015,
                    linear_end=0.0195, sigma_min=0.002, sigma_max=80.0, rho=7.0, noisy_residual=None)
    needs = frozenset({"forward", "adjoint"})

    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        p = self.p
        if p.noisy_residual not in (None, "y", "image"):
            raise ValueError(f"psld: noisy_residual must be null, 'y' or 'image', got {p.noisy_residual!r}")
        pairs = latent_pairs(p, den)
        b = y.shape[0]
        z = pairs[0][0] * noise((b,) + tuple(den.shape), generator)
        back = op.pinv if "svd" in op.provides else op.adjoint
        aty = back(y)
        for st, ss in pairs:
            zg, z0 = denoise_vjp(den, z, st)
            with torch.enable_grad():
                x0 = den.decode(z0)
                ax0 = op(x0)
                if p.noisy_residual == "image":
                    r = op.adjoint(ax0 - y) + float(sigma_y) * noise(x0.shape, generator)
                else:
                    r = y - ax0
                    if p.noisy_residual == "y":
                        r = r - float(sigma_y) * noise(r.shape, generator)
                fit = r.reshape(b, -1).norm(dim=1).sum()
                glued = den.encode(aty + x0 - back(ax0))
                glue = (z0 - glued).reshape(b, -1).norm(dim=1).sum()
                (g,) = torch.autograd.grad(p.omega * fit + p.gamma * glue, zg)
            with torch.no_grad():
                z = ddim_step(z, z0.detach(), st, ss, p.eta, generator) - vp_step_to_ve(st, ss) * g
        with torch.no_grad():
            return den.decode(z)
