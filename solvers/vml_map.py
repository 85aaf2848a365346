"""VML-MAP: per noise level, gradient descent on the simplified variational mode-seeking loss.

VML_S(x) = ||y - H D||^2 / (2 sy^2) - ||x - D||^2 / (2 s^2) - log p_s(x),  D = D(x, s),
whose gradient is one vector-Jacobian product (DESIGN.md):
    grad = J^T g,   g = H^T (H D - y) / sy^2 + (x - D) / s^2.
Loop: x = s_max n; for each of N levels run K steps x <- x - eta_i grad, then x0 = D(x, s_i) and
renoise x = x0 + s_{i+1} n'.  The last x0 is returned.

Step size: eta_i = c / (||H||^2 / sy^2 + 1 / (4 s_i^2)), a bound on the curvature of the loss
(the prior part of the Hessian peaks at 1/(4 s^2), the data part at ||H||^2 / sy^2), with c the
per-task constant ``lr_scale``.  A fixed eta proportional to sy^2 diverges (DESIGN.md, measured).
For a noiseless task sy is floored at ``sigma_y_floor`` inside the loss.

Cost per image: N*K VJPs and N*(K+1) NFEs.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, data_grad, noise
from .registry import register


@register("vml_map")
class VMLMAP(Solver):
    defaults = dict(steps=20, iters=50, lr_scale=1.0, schedule="edm", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0, sigma_y_floor=1e-3)
    needs = frozenset({"forward", "adjoint"})

    def step_sizes(self, sigmas, op, sy):
        return self.p.lr_scale / (op.norm_sq() / sy ** 2 + 1.0 / (4 * sigmas ** 2))

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sy = max(float(sigma_y), p.sigma_y_floor)
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
        etas = self.step_sizes(torch.tensor(sigmas, dtype=torch.float64), op, sy).tolist()
        shape = (y.shape[0],) + tuple(den.shape)
        x = sigmas[0] * noise(shape, generator)
        x0 = x
        for i, (s, eta) in enumerate(zip(sigmas, etas)):
            for _ in range(p.iters):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    d = den(x, s)
                    g = data_grad(op, d.detach(), y) / sy ** 2 + (x.detach() - d.detach()) / s ** 2
                    (grad,) = torch.autograd.grad(d, x, grad_outputs=g)
                x = x.detach() - eta * grad
            with torch.no_grad():
                x0 = den(x, s)
            if i + 1 < len(sigmas):
                x = x0 + sigmas[i + 1] * noise(shape, generator)
        return x0.detach()
