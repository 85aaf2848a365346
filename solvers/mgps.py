"""MGPS, midpoint guidance posterior sampling (Moufad, Janati et al., ICLR'25), VE form.

Grid: DDPM integer timesteps t_k = linspace(0, 999, steps).long() on ADM's linear schedule with a
leading abar = 1 (index 0 is clean), as VE sigmas.  For k = steps-1 ... 2, (t, t') = (t_k, t_{k-1}):
1. midpoint index l = max(floor(alpha t'), 1);
2. D_t = D(x_t, sigma_t); the prior of x_l given x_t is the DDPM posterior
   N(m, s^2 I), m = D_t + (sigma_l^2 / sigma_t^2)(x_t - D_t), s^2 = sigma_l^2 (sigma_t^2 - sigma_l^2) / sigma_t^2;
3. a diagonal Gaussian q = N(mu, diag(exp(2 omega))) initialised at the bridge between the previous
   step's x0 estimate (at sigma = 0) and x_t, evaluated at sigma_l (mean x0_prev + (sigma_l^2/sigma_t^2)
   (x_t - x0_prev), std s) -- the warm start across outer steps;
4. K Adam steps (torch default betas) on the Rao-Blackwellised ELBO
       KL(q || N(m, s^2 I)) + ||y - A(D(x~, sigma_l))||^2 / (2 sigma_y^2),  x~ = mu + exp(omega) n,
   one reparametrised sample per step (1 NFE + 1 VJP at sigma_l); for l = 1 the potential is
   applied to x~ directly.  The Adam lr on mu is lr * sqrt(1 + sigma_l^2): MGPS optimises mu in VP
   units, and Adam's step is in parameter units; omega's lr is lr;
5. x~_l ~ q; x_{t'} from the VE bridge between x~_l (at sigma_l) and x_t (at sigma_t);
   x0_prev = D(x~_l, sigma_l).
Output D(x_{t_1}, sigma_{t_1}).  Losses are per image and summed over the batch (Adam is
elementwise), so images do not interact.  Forward operator only (autograd through A).

Number of gradient steps K at loop index i (rule order as in MGPS): i <= last_window -> grad_steps_last;
i >= steps - first_window -> grad_steps_first; i % every == 0 -> grad_steps_every; else grad_steps.
Defaults (MGPS@7839182 `configs/experiments/sampler/mgps.yaml`): steps 300, alpha 0.5, lr 3e-2,
K rule {i <= 20: 2, i >= n-10: 10, i % 10 == 0: 2, else 2}, threshold 700.  The GMM context (lr 0.1,
threshold 2000 = no warm start, K {i <= 20: 2, i >= n-10: 20, i % 10 == 0: 20, else 2}) is set through
the same params.

Warm start (MGPS's ``mgps_vi_t0_step``, for outer steps whose DDPM index t >= ``warm_threshold``; MGPS's
image default is 700, i.e. the first ~30 % of the steps): the variational step on x_l is initialised
from the bridge anchored at the previous step's x_1 sample (sigma_1 = the first DDPM level, not 0);
after it, a second variational Gaussian on x_1 is fitted by K Adam steps on the ELBO
    -log p(y | x1) - sum(omega) + E_q ||x_l - x1||^2 / (2 (sigma_l^2 - sigma_1^2)) - x1 . sg(score(x1)),
x1 = mu + exp(omega) n (one sample per step; sg: the prior score at sigma_1 from D, no gradient), started
at the DDPM posterior of x_1 given (x_l, D(x_l, sigma_l)); then x_{t'} comes from the bridge between
that x_1 sample (at sigma_1) and x_t, and the x_1 sample is the next step's anchor.  Each of its steps
costs 1 NFE (no VJP).  ``warm_threshold`` above 1000 disables it.
"""
from __future__ import annotations

import math

import torch

from .base import Solver, noise
from .adam import ElementwiseAdam
from .diffusion_steps import bshape, clamp_sigmas, vp_sigmas_at
from .registry import register


def mgps_grid(steps: int, prior):
    ts = torch.linspace(0, 999, steps).long()
    full = clamp_sigmas(vp_sigmas_at(torch.arange(1001), clean_index=True), prior).tolist()
    return ts.tolist(), full


@register("mgps")
class MGPS(Solver):
    defaults = dict(steps=300, alpha=0.5, lr=3e-2, grad_steps=2, grad_steps_first=10, first_window=10,
                    grad_steps_last=2, last_window=20, grad_steps_every=2, every=10, warm_threshold=700,
                    sigma_y_floor=1e-3)
    needs = frozenset({"forward"})

    def n_grad_steps(self, i: int) -> int:
        p = self.p
        if i <= p.last_window:
            return p.grad_steps_last
        if i >= p.steps - p.first_window:
            return p.grad_steps_first
        if i % p.every == 0:
            return p.grad_steps_every
        return p.grad_steps

    def grid(self, den):
        """(timesteps, sigma per index) (a hook: latent_mgps reads the prior's own schedule)."""
        return mgps_grid(self.p.steps, den)

    def midpoint(self, tp: int) -> int:
        """Midpoint timestep index l for the next index t' (a hook: latent_mgps varies alpha)."""
        return max(int(math.floor(self.p.alpha * tp)), 1)

    def solve(self, y, op, den, sigma_y, generator):
        p = self.p
        sy2 = max(float(sigma_y), p.sigma_y_floor) ** 2
        ts, sig = self.grid(den)
        b = y.shape[0]
        shape = (b,) + tuple(den.shape)
        x = sig[ts[-1]] * noise(shape, generator)
        x0_prev = None
        s1 = sig[1]                                   # sigma of DDPM index 1 (the warm anchor level)
        for i in range(p.steps - 1, 1, -1):
            t, tp = ts[i], ts[i - 1]
            l = self.midpoint(tp)
            st, sp, sl = sig[t], sig[tp], sig[l]
            warm = t >= p.warm_threshold
            with torch.no_grad():
                dt = den(x, st)
                if x0_prev is None:
                    x0_prev = dt
                ratio = sl ** 2 / st ** 2
                m = dt + ratio * (x - dt)
                s2 = sl ** 2 * (st ** 2 - sl ** 2) / st ** 2
                # bridge between the anchor (at sigma_a: 0, or sigma_1 when warm) and x_t, at sigma_l
                sa = s1 if warm else 0.0
                ra = (sl ** 2 - sa ** 2) / (st ** 2 - sa ** 2)
                mu0 = x0_prev + ra * (x - x0_prev)
                v0 = (sl ** 2 - sa ** 2) * (st ** 2 - sl ** 2) / (st ** 2 - sa ** 2)
            mu, omega = self.fit(mu0, torch.full_like(mu0, 0.5 * math.log(v0)), m, s2, sl, l, y, op, den,
                                 sy2, shape, generator, self.n_grad_steps(i))
            with torch.no_grad():
                xl = mu + omega.exp() * noise(shape, generator)
            if warm:
                x1 = self._warm_x1(xl, sl, s1, y, op, sy2, self.n_grad_steps(i), den, generator)
                xa, sa = x1, s1
            else:
                xa, sa = xl, sl
            with torch.no_grad():
                a = (sp ** 2 - sa ** 2) / (st ** 2 - sa ** 2)
                var = (sp ** 2 - sa ** 2) * (st ** 2 - sp ** 2) / (st ** 2 - sa ** 2)
                x = xa + a * (x - xa) + math.sqrt(max(var, 0.0)) * noise(shape, generator)
                x0_prev = x1 if warm else den(xl, sl)
            x = x.detach()
        with torch.no_grad():
            return den(x, sig[ts[1]])

    def _warm_x1(self, xl, sl, s1, y, op, sy2, k, den, generator):
        """MGPS's second variational step: a diagonal Gaussian on x_1 given x_l (module docstring);
        returns one sample of it."""
        b = xl.shape[0]
        shape = tuple(xl.shape)
        with torch.no_grad():
            dl = den(xl, sl)
            mu0 = dl + (s1 ** 2 / sl ** 2) * (xl - dl)
            v0 = s1 ** 2 * (sl ** 2 - s1 ** 2) / sl ** 2
        dv = sl ** 2 - s1 ** 2
        mu, omega = mu0.clone(), torch.full_like(mu0, 0.5 * math.log(v0))
        opt = ElementwiseAdam([mu, omega], lr=[self.p.lr * math.sqrt(1 + s1 ** 2), self.p.lr])
        # loss = |y - A x1|^2 / (2 sy2) - sum(omega) + sum(((xl - mu)^2 + e^2) / (2 dv)) - <x1, score>,
        # x1 = mu + e n, e = exp(omega), score held fixed: with gx = d data / d x1 - score,
        #   d/d mu = gx + (mu - xl) / dv,   d/d omega = gx e n - 1 + e^2 / dv
        for _ in range(k):
            n = noise(shape, generator)
            e = omega.exp()
            with torch.enable_grad():
                x1 = (mu + e * n).requires_grad_(True)
                with torch.no_grad():
                    score = (den(x1, s1) - x1) / s1 ** 2
                r = (y - op(x1)).reshape(b, -1)
                (g,) = torch.autograd.grad((r ** 2).sum() / (2 * sy2), x1)
            with torch.no_grad():
                gx = g - score
                opt.step([gx + (mu - xl) / dv, gx * e * n + ((2 * omega).exp() / dv - 1)])
        with torch.no_grad():
            return (mu + omega.exp() * noise(shape, generator)).detach()

    def fit(self, mu, omega, m, s2, sl, l, y, op, den, sy2, shape, generator, k):
        """K Adam steps (torch.optim.Adam's update, default betas and eps, written out: no optimiser
        object, no autograd graph through the Gaussian family) on the ELBO of step 4.  Only the data
        term needs autograd: with x~ = mu + e n, e = exp(omega), and g = d data / d x~ (one VJP),
            d/d mu    = g + (mu - m) / s2
            d/d omega = g * e * n - 1 + e^2 / s2
        (the KL of two Gaussians, differentiated by hand).  Equal to the optimiser version to float
        rounding (tests/test_solver_refactors.py keeps it as the reference)."""
        p = self.p
        b1, b2, eps = 0.9, 0.999, 1e-8
        lrs = (p.lr * math.sqrt(1 + sl ** 2), p.lr)
        params = [mu.clone(), omega.clone()]
        m1 = [torch.zeros_like(mu), torch.zeros_like(mu)]
        m2 = [torch.zeros_like(mu), torch.zeros_like(mu)]
        b = y.shape[0]
        for step in range(1, k + 1):
            mu, omega = params
            n = noise(shape, generator)
            e = omega.exp()
            with torch.enable_grad():
                xs = (mu + e * n).requires_grad_(True)
                pred = den(xs, sl) if l > 1 else xs
                r = (y - op(pred)).reshape(b, -1)
                (g,) = torch.autograd.grad((r ** 2).sum() / (2 * sy2), xs)
            with torch.no_grad():
                grads = (g + (mu - m) / s2, g * e * n + ((2 * omega).exp() / s2 - 1))
                bc1, bc2 = 1 - b1 ** step, math.sqrt(1 - b2 ** step)
                for j in range(2):
                    m1[j].lerp_(grads[j], 1 - b1)
                    m2[j].mul_(b2).addcmul_(grads[j], grads[j], value=1 - b2)
                    params[j].addcdiv_(m1[j], (m2[j].sqrt() / bc2).add_(eps), value=-lrs[j] / bc1)
        return params
