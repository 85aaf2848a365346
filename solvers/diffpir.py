"""DiffPIR (Zhu et al., CVPRW'23) in VE form.

Per step sigma_t -> sigma_s:  x0 = D(x_t, sigma_t); data step
    x0~ = argmin_x ||y - A x||^2 + rho_t ||x - x0||^2,   rho_t = lam * sigma_n^2 / sigma_t^2,
solved in closed form in the operator's spectral basis (coefficient i < k:
(s_i ybar'_i + rho xbar0_i) / (s_i^2 + rho), ybar' = U^T y; null space unchanged); then
eps = (x_t - x0~) / sigma_t and x_s = x0~ + sigma_s (sqrt(1 - zeta) eps + sqrt(zeta) z) (DiffPIR's
update with its DDIM eta = 0).  Output: see ``output`` below.

Units: DiffPIR's code uses sigma_n = the image noise level in [0, 1] units (floored at 1e-3) against
the network's sigma_t in [-1, 1] units; the minimiser is the same in [0, 1] and [-1, 1] space, so with
sigma_y in the harness's [-1, 1] units sigma_n = sigma_y / 2.  Hence lam = 1 (DiffPIR's default) is
rho_t = sigma_y^2 / (4 sigma_t^2); lam = 4 would be the exact Gaussian product
N(y; A x, sigma_y^2) N(x; x0, sigma_t^2).

Time grid "quad" (DiffPIR@111d26e main_ddpir_*.py, skip_type 'quad'): seq_k = floor(sqrt(k/(n-1)) 1000),
k = 0..n-1, the last one minus 1, and level k is ADM timestep 999 - seq_k (the scripts index a reversed
sigma table with seq): coarse steps at high noise, fine ones near sigma = 0.01 (t = 999 .. 0).  At
every level but the last: x0 = D, data step, then the update to the next level.  At the last level
(t = 0, sigma = 0.01) DiffPIR does neither and returns the state x_t itself (``output="xt"``, the
default; 1 NFE fewer here since that last x0 is unused); ``output="x0"`` returns the data step's
x0~ at the last level instead (D then the data step).  x0-hat is clipped to [-1, 1] (``clip``, as
DiffPIR's model_fn with clip_denoised=True).  DiffPIR starts from the noised upsampled/masked y at
t = 999; here from sigma_T n (the mean is < 1 % of sigma_T = 157).  ``edm`` / ``vp_uniform`` grids are
accepted too (same loop, descending).

Operators without an SVD: one gradient step x0~ = x0 - A^T (A x0 - y) / rho_t (DiffPIR's fallback for
non-closed-form tasks; adjoint or autograd), selected automatically when the operator lacks ``svd``
(the registry still lists ``svd`` as needed: the closed form is the method).
Defaults (DiffPIR `configs/deblur.yaml`): 100 steps, lam = 1, zeta = 0.1 (SR: 0.1 in the script,
0.25 in `sisr.yaml`; inpainting: 20 steps, zeta = 1).  1 NFE per step, no VJP.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, data_grad, noise
from .diffusion_steps import clamp_sigmas, vp_sigmas_at
from .registry import register


def quad_timesteps(steps: int) -> torch.Tensor:
    """DiffPIR's 'quad' levels as ADM timesteps, descending from 999 to 0."""
    seq = torch.sqrt(torch.linspace(0, 1000.0 ** 2, steps, dtype=torch.float64)).floor().long()
    seq[-1] -= 1
    return (999 - seq).clamp(0, 999)


def quad_sigmas(steps: int, prior) -> torch.Tensor:
    return clamp_sigmas(vp_sigmas_at(quad_timesteps(steps)), prior)


def prox_data_step(op, x0, y, rho: float):
    if "svd" in op.provides:
        s = op.singulars()
        k = s.numel()
        xb = op.Vt(x0)
        xb[:, :k] = (s * op.Ut(y)[:, :k] + rho * xb[:, :k]) / (s ** 2 + rho)
        return op.V(xb).reshape(x0.shape)
    return x0 - data_grad(op, x0, y) / rho


@register("diffpir")
class DiffPIR(Solver):
    defaults = dict(steps=100, lam=1.0, zeta=0.1, schedule="quad", sigma_n_min=1e-3, clip=True, output="xt",
                    sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward", "svd"})

    @torch.no_grad()
    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        if p.output not in ("xt", "x0"):
            raise ValueError(f"diffpir: output must be 'xt' or 'x0', got {p.output!r}")
        if p.schedule == "quad":
            sigmas = quad_sigmas(p.steps, den).tolist()
        else:
            sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
        sigma_n = max(float(sigma_y) / 2.0, p.sigma_n_min)
        x = sigmas[0] * noise((y.shape[0],) + tuple(den.shape), generator)
        for k, st in enumerate(sigmas):
            last = k == len(sigmas) - 1
            if last and p.output == "xt":
                return x
            x0 = den(x, st)
            if p.clip:
                x0 = x0.clamp(-1.0, 1.0)
            x0t = prox_data_step(op, x0, y, p.lam * sigma_n ** 2 / st ** 2)
            if last:
                return x0t
            ss = sigmas[k + 1]
            eps = (x - x0t) / st
            x = x0t + ss * ((1 - p.zeta) ** 0.5 * eps + p.zeta ** 0.5 * noise(x.shape, generator))
        return x
