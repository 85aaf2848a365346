"""RED-diff (Mardani, Song, Kautz, Vahdat, ICLR'24) in VE form.

Optimise mu (an x0 estimate) with Adam(lr, betas (0.9, 0.99)), mu initialised at A^+ y (zeros when the
operator has no pseudo-inverse).  For each sigma_t of a descending grid: draw eps, x_t = mu + sigma_t eps
(VE form of sqrt(abar) mu + sqrt(1 - abar) eps; eps and eps-hat are the same in both), eps-hat =
(x_t - D(x_t, sigma_t)) / sigma_t (no gradient), and take one Adam step on

    obs_weight * mean((y - A mu)^2) / 2 + w_t * mean(sg(eps-hat - eps) * mu),   w_t = lam * sigma_t,

the "linear" weighting lam * SNR^{-1/2} (SNR^{-1/2} = sigma_t in VE).  Both terms are means over the
measurement and image entries, as in RED-diff (so the balance depends on their sizes; note RED-diff's
loss does not use sigma_y).  The means are per image and summed over the batch, so images do not
interact (Adam is elementwise).  Output: mu (sigma_x0 = 0).
Defaults (RED-diff `_configs/algo/reddiff.yaml`, `_configs/exp/default.yaml`): lam 0.25, obs_weight 1,
lr 0.1, 50 steps on the uniform-skip DDPM grid from t = 1000.  (RED-diff's ``awd`` flag only chooses
between the network's eps and the one recomputed from its x0, the same thing for a denoiser.)
Output: RED-diff's ``sample`` returns x0_pred of its last iteration, i.e. mu *before* the last Adam
step (``output="x0_pred"``, the default, as the official code); ``output="mu"`` returns mu after it.
1 NFE per step, no VJP; the data gradient goes through A by autograd.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .adam import ElementwiseAdam
from .base import Solver, noise
from .registry import register


@register("reddiff")
class REDDiff(Solver):
    defaults = dict(steps=50, lr=0.1, lam=0.25, obs_weight=1.0, betas=(0.9, 0.99), init="pinv",
                    output="x0_pred", schedule="vp_uniform", sigma_min=0.002, sigma_max=80.0, rho=7.0)
    needs = frozenset({"forward"})

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
        shape = (y.shape[0],) + tuple(den.shape)
        if p.init == "pinv" and "svd" in op.provides:
            mu0 = op.pinv(y).reshape(shape)
        else:
            mu0 = torch.zeros(shape, device=y.device, dtype=y.dtype)
        mu = mu0.detach().clone()
        opt = ElementwiseAdam([mu], lr=p.lr, betas=tuple(p.betas))   # torch.optim.Adam's update
        b = y.shape[0]
        if p.output not in ("x0_pred", "mu"):
            raise ValueError(f"reddiff: output must be 'x0_pred' or 'mu', got {p.output!r}")
        before_last = mu0
        for st in sigmas:
            before_last = mu.detach().clone()
            eps = noise(shape, generator)
            with torch.no_grad():
                xt = mu + st * eps
                eps_hat = (xt - den(xt, st)) / st
            with torch.enable_grad():
                mr = mu.detach().requires_grad_(True)
                r = (y - op(mr)).reshape(b, -1)
                obs = 0.5 * (r ** 2).mean(1).sum()
                reg = ((eps_hat - eps) * mr).reshape(b, -1).mean(1).sum()
                loss = p.obs_weight * obs + p.lam * st * reg
                (g,) = torch.autograd.grad(loss, mr)
            opt.step([g])
        return before_last if p.output == "x0_pred" else mu.detach()
