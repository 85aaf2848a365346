"""ReSample (Song, Kwon, Zhang, Hu, Qu, Shen, ICLR'24): latent DDIM with a DPS step, hard data consistency
and stochastic resampling, as the authors' code runs it (soominkwon/resample ``ldm/models/diffusion/ddim.py``:
``resample_sampling``, called by ``sample_condition.py``).

The algorithm is written in the latent model's VP coordinates (z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) n),
with the epsilon network eps(z, t) of the latent denoiser D (eps = (z/sqrt(abar) - D(z/sqrt(abar), sigma))
/ sigma, sigma^2 = (1 - abar)/abar), on LDM's DDIM grid (solvers/ldm_ddim.py: timesteps c i + 1, the
latent model's VP table or LDM's linear schedule).  With S steps, index k = S-1 .. 0, a = abar at the
index's timestep, a' = abar of the previous one (a' = abar_0 for k = 0):
1. DDIM step (``eta``; 0 in the official script): z' = sqrt(a') z0 + sqrt(1 - a' - s^2) eps + s n, with
   z0 = (z - sqrt(1 - a) eps)/sqrt(a), and the "pseudo" estimate zp = (z - c eps)/sqrt(a);
2. a DPS step on the pseudo estimate, the network held constant (its ``apply_model`` runs without
   gradients): z' <- z' - ``dps_scale`` a * grad_z ||y - A(decode(zp))||, i.e. dps_scale sqrt(a) times
   the gradient with respect to zp (the norm is plain and per image: the code takes it over the batch,
   which is per image with its one sample per run; the YAML ``scale`` is not used: the code passes a/2);
3. every ``every`` indices k (k % every == 0, 0 < k <= S - S//3), "time travel": ``travel`` unconditional
   DDIM steps from z' give a new zp; then hard data consistency on zp --
   * k >= S//3 (second third): pixel optimisation min_x mean (A x - y)^2 from decode(zp) by AdamW
     (``pixel_lr`` 1e-2, ``pixel_iters`` 2000 at most, stop once the loss is below ``tol``^2), z_c = encode(x);
   * k < S//3 (last third): latent optimisation min_z mean (A(decode(z)) - y)^2 from zp by AdamW
     (``latent_lr`` 5e-3, ``latent_iters`` 500 at most; after 200 iterations it stops when the loss is
     above the loss 200 iterations earlier, or below ``tol``^2);
   then stochastic resampling: z ~ N(sqrt(a') z_c, (1 - a') I) x N(z', v I) normalised,
   v = ``gamma`` (1 - a')/(1 - a) (1 - a/a') (40 x the DDPM posterior variance);
4. at the end, one more latent optimisation from the final state; the output is its decode.
AdamW is torch's (betas 0.9/0.999, eps 1e-8, decoupled weight decay ``weight_decay`` 0.01, the
default the code leaves on), run per image with per-image stopping (the code runs one image).

Two places where the code differs from the paper are flags:
* ``pseudo_x0``: "resample_code" (default) is the code's zp = (z - (1 - a) eps)/sqrt(a), which its comment
  calls Tweedie's formula; "tweedie" uses Tweedie's formula zp = z0 = (z - sqrt(1 - a) eps)/sqrt(a);
* ``travel_alignment``: "resample_code" (default) replays the code's index arithmetic in the time-travel
  loop (its first step evaluates the network at the state's timestep but uses the alphas of the index
  above, so the state stays at its level; later steps use the right alphas but evaluate the network one
  timestep below the state's); "aligned" takes ``travel`` plain DDIM steps down from the state's level.
Defaults (official): 500 steps, eta 0, dps_scale 0.5, every 10, travel 5, gamma 40, thirds split,
tol 1e-3.  Two switches for the papers that report ReSample variants: ``pixel_opt: false`` uses the
latent optimisation in the second third too (VML-MAP's "ReSample w/o PO" row); ``iters`` (default
null) caps every consistency optimisation at one count -- the MGPS repository's copy of the sampler
passes its ``max_optimization_iters`` (200 in its task configs) as ``max_iters`` to the pixel, the
latent and the final optimisation alike.  Needs only a forward operator (autograd through A and the decoder).  Cost per step: 1 NFE and
a decoder VJP (no denoiser VJP); plus up to 2000 (pixel) / 500 (latent) operator+decoder gradient
iterations per consistency step.
"""
from __future__ import annotations

import math

import torch

from .base import Solver, noise
from .latent_daps import require_latent
from .ldm_ddim import ldm_table
from .registry import register


class BatchAdamW:
    """torch.optim.AdamW's update (decoupled weight decay, bias-corrected moments) on a (B, ...) tensor,
    with a per-sample ``active`` mask so that each sample can stop on its own."""

    def __init__(self, x, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.x = x.detach().clone()
        self.m = torch.zeros_like(self.x)
        self.v = torch.zeros_like(self.x)
        self.lr, self.wd, self.b1, self.b2, self.eps = lr, weight_decay, betas[0], betas[1], eps
        self.t = 0
        self.active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)

    def step(self, g):
        self.t += 1
        a = self.active.reshape((-1,) + (1,) * (self.x.dim() - 1))
        m = self.b1 * self.m + (1 - self.b1) * g
        v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        x = self.x * (1 - self.lr * self.wd)
        x = x - (self.lr / bc1) * m / ((v.sqrt() / math.sqrt(bc2)) + self.eps)
        self.m, self.v = torch.where(a, m, self.m), torch.where(a, v, self.v)
        self.x = torch.where(a, x, self.x)


def _per_sample_mse(r):
    return (r.reshape(r.shape[0], -1) ** 2).mean(1)


@register("resample")
class ReSample(Solver):
    defaults = dict(steps=500, eta=0.0, dps_scale=0.5, every=10, travel=5, gamma=40.0, pixel_lr=1e-2,
                    pixel_iters=2000, latent_lr=5e-3, latent_iters=500, window=200, tol=1e-3, weight_decay=0.01,
                    final_latent_opt=True, pseudo_x0="resample_code", travel_alignment="resample_code",
                    linear_start=0.0015, linear_end=0.0195, pixel_opt=True, iters=None)
    needs = frozenset({"forward"})

    # --- hard data consistency ---------------------------------------------------------------
    def pixel_optimisation(self, x, y, op):
        p = self.p
        opt = BatchAdamW(x, p.pixel_lr, p.weight_decay)
        for _ in range(p.pixel_iters if p.iters is None else int(p.iters)):
            with torch.enable_grad():
                v = opt.x.detach().requires_grad_(True)
                loss = _per_sample_mse(op(v) - y)
                (g,) = torch.autograd.grad(loss.sum(), v)
            opt.step(g)
            opt.active &= ~(loss.detach() < p.tol ** 2)
            if not opt.active.any():
                break
        return opt.x

    def latent_optimisation(self, z, y, op, den):
        p = self.p
        opt = BatchAdamW(z, p.latent_lr, p.weight_decay)
        hist = []
        for itr in range(p.latent_iters if p.iters is None else int(p.iters)):
            with torch.enable_grad():
                v = opt.x.detach().requires_grad_(True)
                loss = _per_sample_mse(op(den.decode(v)) - y)
                (g,) = torch.autograd.grad(loss.sum(), v)
            opt.step(g)
            cur = loss.detach()
            hist.append(cur)
            stop = cur < p.tol ** 2
            if itr >= p.window:
                stop |= hist[itr - p.window] < cur
            opt.active &= ~stop
            if not opt.active.any():
                break
        return opt.x

    # --- sampler -------------------------------------------------------------------------------
    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        p = self.p
        for k, ok in (("pseudo_x0", ("resample_code", "tweedie")), ("travel_alignment", ("resample_code", "aligned"))):
            if getattr(p, k) not in ok:
                raise ValueError(f"resample: {k} must be one of {', '.join(ok)}, got {getattr(p, k)!r}")
        table = ldm_table(den, p.linear_start, p.linear_end)
        abar_all = 1.0 / (1.0 + table ** 2)
        T = table.numel()
        S = int(p.steps)
        c = T // S
        ts = torch.arange(0, T, c) + 1
        if int(ts[-1]) == ts.numel():
            ts = ts - 1
        ts = ts[ts < T]
        S = ts.numel()
        alphas = abar_all[ts].tolist()
        alphas_prev = [float(abar_all[0])] + alphas[:-1]
        model_ab = abar_all[ts].tolist()

        def eps_at(z, ab):
            s = math.sqrt((1 - ab) / ab)
            zve = z / math.sqrt(ab)
            with torch.no_grad():
                return (zve - den(zve, s)) / s

        def ddim(z, e, a_t, a_p):
            """One DDIM update with the network output e; returns (z_prev, pseudo estimate)."""
            s = p.eta * math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)) if a_p < 1 else 0.0
            z0 = (z - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
            zn = math.sqrt(a_p) * z0 + math.sqrt(max(1 - a_p - s * s, 0.0)) * e
            if s > 0:
                zn = zn + s * noise(z.shape, generator)
            cz = (1 - a_t) if p.pseudo_x0 == "resample_code" else math.sqrt(1 - a_t)
            return zn, (z - cz * e) / math.sqrt(a_t)

        b = y.shape[0]
        z = noise((b,) + tuple(den.shape), generator)
        split = S // 3
        for i in range(S):
            index = S - i - 1
            a_t, a_p = alphas[index], alphas_prev[index]
            zn, zp = ddim(z, eps_at(z, model_ab[index]), a_t, a_p)
            with torch.enable_grad():
                v = zp.detach().requires_grad_(True)
                fit = (y - op(den.decode(v))).reshape(b, -1).norm(dim=1).sum()
                (g,) = torch.autograd.grad(fit, v)
            z = zn - p.dps_scale * math.sqrt(a_t) * g
            if not (0 < index <= S - split and index % p.every == 0):
                continue
            z_saved = z
            zt = z
            for k in range(i, min(i + p.travel, S - 1)):
                if p.travel_alignment == "resample_code":
                    j = S - k - 1                               # the code's index_; network at ts[j - 1]
                    e = eps_at(zt, model_ab[j - 1])
                    zt, zp = ddim(zt, e, alphas[j], alphas_prev[j])
                else:
                    j = index - 1 - (k - i)                     # the state's own index
                    e = eps_at(zt, model_ab[j])
                    zt, zp = ddim(zt, e, alphas[j], alphas_prev[j])
            var = p.gamma * (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
            if index >= split and p.pixel_opt:
                with torch.no_grad():
                    x = self.pixel_optimisation(den.decode(zp), y, op)
                    zc = den.encode(x)
            else:
                zc = self.latent_optimisation(zp, y, op, den)
            mean = (var * math.sqrt(a_p) * zc + (1 - a_p) * z_saved) / (var + 1 - a_p)
            z = mean + math.sqrt(1.0 / (1.0 / var + 1.0 / (1 - a_p))) * noise(z.shape, generator)
        if p.final_latent_opt:
            z = self.latent_optimisation(z, y, op, den)
        with torch.no_grad():
            return den.decode(z)
