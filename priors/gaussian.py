"""Gaussian prior N(mu, Sigma) with exact denoiser, posterior, MAP and samples.

Sigma = Q diag(lam) Q^T is eigendecomposed once, so the denoiser
D(x, s) = mu + Q diag(lam / (lam + s^2)) Q^T (x - mu) costs two n x n products.

Posterior for y = H x + sigma_y e: write x = mu + L z, L = Q diag(sqrt(lam)), z ~ N(0, I), and take
the SVD M = H L = P diag(s) R^T (M is built by applying H to the columns of L, so any operator with
a forward map works).  Along R's columns the posterior on z is independent:
    mean_i = s_i / (s_i^2 + sigma_y^2) (P^T (y - H mu))_i,   var_i = sigma_y^2 / (s_i^2 + sigma_y^2)
(var_i = 1 where s_i = 0), so mean = MAP = mu + L R mean, cov = L R diag(var) R^T L^T.  This also
covers sigma_y = 0.  Exact computations run in float64.
"""
from __future__ import annotations

import math

import torch

from .base import EXACT_SIGMA_RANGE, Denoiser, sigma_column
from .registry import register


class GaussianPrior(Denoiser):
    exact = True
    sigma_min, sigma_max = EXACT_SIGMA_RANGE      # exact at every noise level (no grid clipping)

    def __init__(self, mean, cov, shape=None):
        mean = torch.as_tensor(mean, dtype=torch.float64)
        self.shape = tuple(shape) if shape is not None else tuple(mean.shape)
        n = math.prod(self.shape)
        mean = mean.reshape(-1)
        if mean.numel() == 1 and n > 1:
            mean = mean.expand(n).clone()
        cov = torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (n, n):
            raise ValueError(f"covariance must be ({n}, {n}) for shape {self.shape}, got {tuple(cov.shape)}")
        lam, q = torch.linalg.eigh(0.5 * (cov + cov.T))
        lam = lam.clamp_min(0.0)
        self.n = n
        self.mu64, self.lam64, self.Q64 = mean, lam, q
        self.mu, self.lam, self.Q = mean.float(), lam.float(), q.float().contiguous()
        self._cache: dict = {}

    @classmethod
    def from_eig(cls, mean, lam, q, shape):
        """Build from a stored eigendecomposition (skips the O(n^3) eigh)."""
        self = cls.__new__(cls)
        self.shape = tuple(shape)
        self.n = int(torch.as_tensor(lam).numel())
        self.mu64 = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        self.lam64 = torch.as_tensor(lam, dtype=torch.float64).clamp_min(0.0)
        self.Q64 = torch.as_tensor(q, dtype=torch.float64)
        self.mu, self.lam, self.Q = self.mu64.float(), self.lam64.float(), self.Q64.float().contiguous()
        self._cache = {}
        return self

    # --- denoiser ------------------------------------------------------------------------
    def denoise(self, x, sigma):
        b = x.shape[0]
        s2 = sigma_column(sigma, x) ** 2
        z = (x.reshape(b, -1) - self.mu) @ self.Q
        ev = self.lam + s2
        z = z * torch.where(ev > 0, self.lam / ev.clamp_min(1e-38), torch.ones_like(ev))  # sigma = 0: D = x
        return (self.mu + z @ self.Q.T).reshape(x.shape)

    # --- consistency map (exact) -----------------------------------------------------------
    consistency_sigma_min = 0.002   # where f is the identity (the Consistency Models release's eps)

    def consistency(self, x, sigma):
        """Exact one-step consistency map f(x, sigma): the end point at ``consistency_sigma_min``
        (= eps) of the probability-flow ODE started from x at level sigma.

        Derivation.  The PF-ODE in the VE convention is dx/dsigma = (x - D(x, sigma)) / sigma.
        Along an eigen-direction q_i of the covariance (variance lam_i), u = q_i^T (x - mu) obeys
        du/dsigma = (u - lam_i u / (lam_i + sigma^2)) / sigma = sigma u / (lam_i + sigma^2), i.e.
        d log u / dsigma = d/dsigma [log(lam_i + sigma^2) / 2], so u(sigma) / sqrt(lam_i + sigma^2)
        is constant along a trajectory and

            f(x, sigma) = mu + Q diag( sqrt((lam + eps^2) / (lam + sigma^2)) ) Q^T (x - mu).

        It maps the marginal N(mu, S + sigma^2 I) onto N(mu, S + eps^2 I) (the variance ratio of
        each direction is the square of its factor), is the identity at sigma = eps (levels below
        eps are treated as eps, as a consistency model's boundary condition does), and is invertible
        for sigma > 0 (every factor is positive, also where lam_i = 0: eps / sigma)."""
        b = x.shape[0]
        eps2 = float(self.consistency_sigma_min) ** 2
        s2 = sigma_column(sigma, x).clamp_min(float(self.consistency_sigma_min)) ** 2
        z = (x.reshape(b, -1) - self.mu) @ self.Q
        z = z * ((self.lam + eps2) / (self.lam + s2)).sqrt()
        return (self.mu + z @ self.Q.T).reshape(x.shape)

    def cov(self) -> torch.Tensor:
        return (self.Q64 * self.lam64) @ self.Q64.T

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        xi = torch.randn((n, self.n), generator=generator, dtype=torch.float64, device=generator.device)
        x = self.mu64.to(xi.device) + (xi * self.lam64.sqrt().to(xi.device)) @ self.Q64.T.to(xi.device)
        return x.float().reshape((n,) + self.shape)

    # --- exact posterior -----------------------------------------------------------------
    def _forward(self, op):
        """(M = H L as an (m, n) float64 matrix, H mu), cached per operator object."""
        key = ("M", id(op))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is op:
            return hit[1]
        L = (self.Q64 * self.lam64.sqrt()).T  # rows = columns of L
        cols = L.float().reshape((self.n,) + self.shape).to(op._device())
        chunks = [op(cols[i:i + 512]).double().reshape(min(512, self.n - i), -1)
                  for i in range(0, self.n, 512)]
        M = torch.cat(chunks).T.cpu()            # (m, n)
        hmu = op(self.mu.reshape((1,) + self.shape).to(op._device())).double().reshape(-1).cpu()
        self._cache[key] = (op, (M, hmu))
        return M, hmu

    def _factor(self, op):
        """SVD of M = H L (cached per operator object)."""
        key = id(op)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is op:
            return hit[1]
        M, hmu = self._forward(op)
        P, s, Rt = torch.linalg.svd(M, full_matrices=True)
        fac = (P, s, Rt.T.contiguous(), hmu)
        self._cache[key] = (op, fac)
        return fac

    def _spectral_posterior(self, op, sigma_y):
        P, s, R, hmu = self._factor(op)
        sfull = torch.zeros(self.n, dtype=torch.float64)
        sfull[: s.numel()] = s
        s2, v2 = sfull ** 2, float(sigma_y) ** 2
        var = torch.where(sfull > 0, v2 / (s2 + v2), torch.ones_like(sfull))
        gain = torch.where(sfull > 0, sfull / (s2 + v2), torch.zeros_like(sfull))
        return P, R, hmu, var, gain

    def posterior(self, y, op, sigma_y):
        """Exact posterior: {'mean': (B, *shape) float64, 'cov': (n, n) float64}."""
        P, R, hmu, var, gain = self._spectral_posterior(op, sigma_y)
        L = self.Q64 * self.lam64.sqrt()
        r = y.double().reshape(y.shape[0], -1).cpu() - hmu
        proj = r @ P                                       # (B, m)
        k = min(proj.shape[1], self.n)
        zc = torch.zeros(y.shape[0], self.n, dtype=torch.float64)
        zc[:, :k] = proj[:, :k] * gain[:k]
        mean = self.mu64 + (zc @ R.T) @ L.T
        LR = L @ R
        cov = (LR * var) @ LR.T
        return {"mean": mean.reshape((-1,) + self.shape), "cov": cov}

    def map_estimate(self, y, op, sigma_y) -> torch.Tensor:
        """The posterior mean (= MAP).  sigma_y > 0: mu + L M^T (M M^T + sigma_y^2 I)^-1 (y - H mu)
        with M = H L, S = L L^T, by Cholesky (no SVD, no posterior covariance); sigma_y = 0 goes
        through the spectral posterior (pseudo-inverse on the range of M)."""
        if float(sigma_y) <= 0:
            return self.posterior(y, op, sigma_y)["mean"].float().to(y.device)
        M, hmu = self._forward(op)
        A = M @ M.T
        A.diagonal().add_(float(sigma_y) ** 2)
        r = y.double().reshape(y.shape[0], -1).cpu() - hmu
        w = torch.cholesky_solve(r.T.contiguous(), torch.linalg.cholesky(A))   # (m, B)
        mean = self.mu64 + (w.T @ M) @ (self.Q64 * self.lam64.sqrt()).T
        return mean.reshape((-1,) + self.shape).float().to(y.device)

    def sample_posterior(self, y, op, sigma_y, n: int, generator: torch.Generator) -> torch.Tensor:
        """Exact posterior samples, shape (B, n, *shape) for y of batch size B."""
        P, R, hmu, var, gain = self._spectral_posterior(op, sigma_y)
        mean = self.posterior(y, op, sigma_y)["mean"].reshape(y.shape[0], 1, -1)
        xi = torch.randn((y.shape[0], n, self.n), generator=generator, dtype=torch.float64,
                         device=generator.device).cpu()
        L = self.Q64 * self.lam64.sqrt()
        x = mean + ((xi * var.sqrt()) @ R.T) @ L.T
        return x.float().reshape((y.shape[0], n) + self.shape).to(y.device)

    def log_evidence(self, y, op, sigma_y) -> torch.Tensor:
        """log N(y; H mu, H Sigma H^T + sigma_y^2 I) per batch item (needs sigma_y > 0)."""
        P, s, R, hmu = self._factor(op)
        m = P.shape[0]
        ev = torch.full((m,), float(sigma_y) ** 2, dtype=torch.float64)
        ev[: s.numel()] += s ** 2
        r = (y.double().reshape(y.shape[0], -1).cpu() - hmu) @ P
        return -0.5 * ((r ** 2 / ev).sum(1) + ev.log().sum() + m * math.log(2 * math.pi))


@register("gaussian")
def gaussian(mean, cov, shape=None) -> GaussianPrior:
    return GaussianPrior(mean, cov, shape)
