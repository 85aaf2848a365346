"""Gaussian-mixture prior sum_k w_k N(m_k, C_k) with exact denoiser and posterior.

Denoiser: D(x, s) = sum_k pi_k(x) [m_k + C_k (C_k + s^2 I)^-1 (x - m_k)],
pi_k(x) proportional to w_k N(x; m_k, C_k + s^2 I)  (each C_k eigendecomposed once).
Posterior for a linear H: a mixture of the components' Gaussian posteriors with log-weights
log w_k + log N(y; H m_k, H C_k H^T + sigma_y^2 I).  MAP: every component's posterior mean is
refined by the fixed-point iteration of the mixture density's stationarity condition and the
highest-density point wins ("the best mode").
"""
from __future__ import annotations

import math

import torch

from .base import EXACT_SIGMA_RANGE, Denoiser, sigma_column
from .gaussian import GaussianPrior
from .registry import register


class GMMPrior(Denoiser):
    exact = True
    sigma_min, sigma_max = EXACT_SIGMA_RANGE      # exact at every noise level (no grid clipping)

    def __init__(self, weights, means, covs, shape=None):
        w = torch.as_tensor(weights, dtype=torch.float64)
        means = torch.as_tensor(means, dtype=torch.float64)
        kc = w.numel()
        if means.shape[0] != kc:
            raise ValueError(f"{kc} weights but {means.shape[0]} means")
        self.shape = tuple(shape) if shape is not None else tuple(means.shape[1:])
        n = math.prod(self.shape)
        means = means.reshape(kc, n)
        covs = torch.as_tensor(covs, dtype=torch.float64)
        if covs.ndim == 2:
            covs = covs.expand(kc, n, n)
        if covs.shape != (kc, n, n):
            raise ValueError(f"covariances must be ({kc}, {n}, {n}), got {tuple(covs.shape)}")
        if (w < 0).any() or w.sum() <= 0:
            raise ValueError("mixture weights must be non-negative with a positive sum")
        self.n = n
        self.logw64 = (w / w.sum()).log()
        self.components = [GaussianPrior(means[k], covs[k], (n,)) for k in range(kc)]
        self.logw = self.logw64.float()
        self.means = means.float()
        self.lams = torch.stack([c.lam for c in self.components])          # (K, n)
        self.Qs = torch.stack([c.Q for c in self.components])              # (K, n, n)

    def to(self, device):
        super().to(device)
        return self

    # --- denoiser ------------------------------------------------------------------------
    def denoise(self, x, sigma):
        b = x.shape[0]
        s2 = sigma_column(sigma, x).reshape(b, 1, 1) ** 2
        d = x.reshape(b, 1, -1) - self.means                                # (B, K, n)
        z = torch.einsum("bkn,knj->bkj", d, self.Qs)                        # eigen-coordinates
        ev = self.lams + s2                                                 # (B, K, n)
        logn = -0.5 * ((z ** 2 / ev).sum(-1) + ev.log().sum(-1))
        pi = torch.softmax(self.logw + logn, dim=1)                         # (B, K)
        shrunk = torch.einsum("bkj,knj->bkn", z * (self.lams / ev), self.Qs) + self.means
        return (pi.unsqueeze(-1) * shrunk).sum(1).reshape(x.shape)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.multinomial(self.logw64.exp(), n, replacement=True, generator=_cpu(generator))
        out = torch.empty((n, self.n), dtype=torch.float32)
        for k in idx.unique().tolist():
            sel = (idx == k).nonzero().squeeze(1)
            out[sel] = self.components[k].sample(sel.numel(), generator).reshape(sel.numel(), -1).cpu()
        return out.reshape((n,) + self.shape)

    # --- exact posterior -----------------------------------------------------------------
    def _vec_op(self, op):
        """The operator as seen by the (vector-shaped) components."""
        if tuple(op.x_shape) == (self.n,):
            return op
        return _Flattened(op, self.shape)

    def posterior(self, y, op, sigma_y):
        """{'log_weights': (B, K), 'means': (B, K, n), 'covs': (K, n, n)} in float64."""
        if sigma_y <= 0:
            raise ValueError("the mixture posterior needs sigma_y > 0")
        vop = self._vec_op(op)
        logw = torch.stack([self.logw64[k] + c.log_evidence(y, vop, sigma_y)
                            for k, c in enumerate(self.components)], dim=1)
        posts = [c.posterior(y, vop, sigma_y) for c in self.components]
        return {"log_weights": torch.log_softmax(logw, dim=1),
                "means": torch.stack([p["mean"] for p in posts], dim=1),
                "covs": torch.stack([p["cov"] for p in posts])}

    def sample_posterior(self, y, op, sigma_y, n: int, generator: torch.Generator) -> torch.Tensor:
        """Exact posterior samples, (B, n, *shape)."""
        post = self.posterior(y, op, sigma_y)
        b = y.shape[0]
        out = torch.empty((b, n, self.n), dtype=torch.float64)
        chol = torch.linalg.cholesky(post["covs"] + 1e-12 * torch.eye(self.n, dtype=torch.float64))
        g = _cpu(generator)
        for i in range(b):
            idx = torch.multinomial(post["log_weights"][i].exp(), n, replacement=True, generator=g)
            xi = torch.randn((n, self.n), generator=g, dtype=torch.float64)
            out[i] = post["means"][i, idx] + torch.einsum("nij,nj->ni", chol[idx], xi)
        return out.float().reshape((b, n) + self.shape).to(y.device)

    def log_posterior_density(self, x, post, i: int) -> torch.Tensor:
        """Unnormalised log p(x | y) for batch item i, x: (P, n) float64."""
        prec = torch.linalg.inv(post["covs"])
        d = x.unsqueeze(1) - post["means"][i].unsqueeze(0)                  # (P, K, n)
        quad = torch.einsum("pki,kij,pkj->pk", d, prec, d)
        logdet = torch.linalg.slogdet(post["covs"])[1]
        return torch.logsumexp(post["log_weights"][i] - 0.5 * (quad + logdet), dim=1)

    def map_estimate(self, y, op, sigma_y, iters: int = 200) -> torch.Tensor:
        post = self.posterior(y, op, sigma_y)
        prec = torch.linalg.inv(post["covs"])                               # (K, n, n)
        pm = torch.einsum("kij,bkj->bki", prec, post["means"])              # prec @ mean
        logdet = torch.linalg.slogdet(post["covs"])[1]
        out = []
        for i in range(y.shape[0]):
            x = post["means"][i].clone()                                    # (K starts, n)
            for _ in range(iters):
                d = x.unsqueeze(1) - post["means"][i].unsqueeze(0)
                quad = torch.einsum("pki,kij,pkj->pk", d, prec, d)
                r = torch.softmax(post["log_weights"][i] - 0.5 * (quad + logdet), dim=1)  # (P, K)
                a = torch.einsum("pk,kij->pij", r, prec)
                rhs = torch.einsum("pk,ki->pi", r, pm[i])
                x = torch.linalg.solve(a, rhs)
            dens = self.log_posterior_density(x, post, i)
            out.append(x[dens.argmax()])
        return torch.stack(out).float().reshape((-1,) + self.shape).to(y.device)


class _Flattened:
    """Present an operator on shaped inputs as one on flat vectors."""

    def __init__(self, op, shape):
        self.op, self.shape = op, tuple(shape)
        self.x_shape = (math.prod(shape),)

    def __call__(self, x):
        return self.op(x.reshape((-1,) + self.shape))

    def _device(self):
        return self.op._device()


def _cpu(g: torch.Generator) -> torch.Generator:
    if g.device.type == "cpu":
        return g
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g, device=g.device)))


@register("gmm")
def gmm(weights, means, covs, shape=None):
    return GMMPrior(weights, means, covs, shape)
