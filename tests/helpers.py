"""Shared test fixtures-as-functions: random Gaussian priors with known spectra."""
import math

import torch

import priors


def random_gaussian(shape, lo=3e-4, hi=0.3, seed=0, mean_scale=0.1):
    """N(mu, Q diag(ev) Q^T) with log-spaced eigenvalues in [lo, hi] and a random orthogonal Q."""
    n = math.prod(shape)
    g = torch.Generator().manual_seed(seed)
    ev = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    mu = mean_scale * torch.randn(shape, generator=g, dtype=torch.float64)
    return priors.build("gaussian", mean=mu, cov=(q * ev) @ q.T), g
