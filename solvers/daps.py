"""DAPS (Zhang, Chu et al., CVPR'25), native EDM form; ``daps_1k`` and ``daps_4k``.

Annealing grid: EDM poly-rho (rho = 7) from sigma_max = 100 to sigma_min = 0.1 with
``annealing_steps + 1`` points, of which the first ``annealing_steps`` are used, then 0 (DAPS's
scheduler).  x = sigma_0 n.  At each level sigma_i:
1. x0-hat: ``ode_steps`` Euler steps of the probability-flow ODE from sigma_i along a poly-7 grid of
   ``ode_steps + 1`` points ending at ``ode_sigma_min`` = 0.01; x0-hat is the ODE state there, as in
   DAPS (``cores/scheduler.py``: DiffusionPFODE integrates over the scheduler's discrete time steps,
   whose last one is sigma_min, and returns the last state).  ``ode_to_zero=True`` instead ends the
   grid with a step to sigma = 0 (x0-hat = D at the last grid point; our former reading).  Either way
   ``ode_steps`` NFE, no VJP.
2. Langevin in x0-space, ``langevin_steps`` steps from x0-hat:
       x <- x + eta_i [ -grad ||A(x) - y||^2 / tau^2 + (x0hat - x) / sigma_i^2 ] + sqrt(2 eta_i) n,
   i.e. target exp(-||A x - y||^2 / tau^2) N(x; x0hat, sigma_i^2 I) (DAPS's unhalved loss and its
   Gaussian "prior solver" with r_t = sigma_i); eta_i = lr (1 + (i / (annealing_steps + 1))
   (lr_min_ratio - 1)), linear decay over levels, constant within one Langevin run.
   ``tau`` = 0.01 is DAPS's deliberately sharpened likelihood (not sigma_y);  ``tau=None`` uses
   tau = sqrt(2) sigma_y, the exact likelihood exp(-||Ax - y||^2 / (2 sigma_y^2)).
3. x = x0^y + sigma_{i+1} n  (sigma_N = 0, so the output is the last x0^y).
The data gradient uses the operator's adjoint when it has one, autograd through A otherwise, so
nonlinear tasks work.  Unlike DAPS's code, NaNs are *not* replaced by zeros (the pipeline flags them).

Defaults (DAPS@098df6b `configs/sampler/edm_daps.yaml`, `configs/task/*.yaml`, pixel group):
sigma_max 100, sigma_min 0.1, 200 annealing steps, 5 ODE steps, 100 Langevin steps, tau 0.01,
lr_min_ratio 0.01, lr 1e-4 (down-sampling, Gaussian blur, random inpainting; box inpainting and motion
blur 5e-5, phase retrieval 5e-5, HDR 2e-5, nonlinear blur 1e-5: set ``lr`` per task).

DAPS-1K = 200 annealing x 5 ODE steps = 1000 NFE (the repository's ``edm_daps.yaml``, used by every
command in its README; the paper's own description of DAPS-1K is 250 x 4).  DAPS-4K is not in the
repository; the paper (arXiv 2407.01521, experimental setup) runs it as 400 annealing levels x 10
ODE steps = 4000 NFE with the same 100 Langevin steps per level; ``daps_4k`` uses that split (both
are parameters: ``annealing_steps``, ``ode_steps``).
"""
from __future__ import annotations

import math

import torch

from dipbench.schedule import edm_sigmas
from .base import Solver, data_grad, noise
from .diffusion_steps import euler_pf_ode
from .registry import register


def daps_annealing_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float, prior):
    hi = min(float(sigma_max), float(prior.sigma_max))
    lo = max(float(sigma_min), float(prior.sigma_min))
    return edm_sigmas(n + 1, lo, hi, rho)[:n].tolist() + [0.0]


def daps_x0hat(den, x, sigma: float, ode_steps: int, ode_sigma_min: float, rho: float,
               to_zero: bool = False):
    """``ode_steps`` Euler PF-ODE steps from sigma on a poly-rho grid of ode_steps + 1 points ending at
    ode_sigma_min (DAPS); with ``to_zero`` the grid's last point is replaced by 0."""
    if sigma <= ode_sigma_min:
        return den(x, sigma)
    grid = edm_sigmas(ode_steps + 1, ode_sigma_min, sigma, rho).tolist()
    if to_zero:
        grid[-1] = 0.0
    return euler_pf_ode(den, x, grid)


def langevin_x0(x0hat, y, op, sigma: float, tau: float, lr: float, steps: int, generator):
    x = x0hat.clone()
    for _ in range(steps):
        g = 2.0 * data_grad(op, x, y) / tau ** 2 + (x - x0hat) / sigma ** 2
        x = x - lr * g + math.sqrt(2 * lr) * noise(x.shape, generator)
    return x


class DAPSBase(Solver):
    defaults = dict(annealing_steps=200, ode_steps=5, langevin_steps=100, lr=1e-4, lr_min_ratio=0.01,
                    tau=0.01, sigma_max=100.0, sigma_min=0.1, ode_sigma_min=0.01, rho=7.0,
                    ode_to_zero=False)
    needs = frozenset({"forward"})

    @torch.no_grad()
    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        tau = p.tau if p.tau is not None else math.sqrt(2.0) * max(float(sigma_y), 1e-3)
        sigmas = daps_annealing_sigmas(p.annealing_steps, p.sigma_min, p.sigma_max, p.rho, den)
        n_sched = p.annealing_steps + 1
        x = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        x0y = x
        for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            x0hat = daps_x0hat(den, x, s, p.ode_steps, p.ode_sigma_min, p.rho, p.ode_to_zero)
            lr = p.lr * (1.0 + (i / n_sched) * (p.lr_min_ratio - 1.0))
            x0y = langevin_x0(x0hat, y, op, s, tau, lr, p.langevin_steps, generator)
            x = x0y + s_next * noise(x0y.shape, generator) if s_next > 0 else x0y
        return x0y


@register("daps_1k")
class DAPS1K(DAPSBase):
    defaults = dict(DAPSBase.defaults)


@register("daps_4k")
class DAPS4K(DAPSBase):
    # DAPS paper: "DAPS-4K" = 400 annealing levels x 10 Euler steps (module docstring)
    defaults = dict(DAPSBase.defaults, annealing_steps=400, ode_steps=10)
