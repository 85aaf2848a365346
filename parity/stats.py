"""Statistics of one replicate: a batch x of B reconstructions (B, *x_shape) of a parity problem.

Each statistic is a function ``f(x, problem) -> float`` registered under a name; its definition
(in words) is the function's docstring, which the records quote.  ``mean_err`` and ``spread`` are the
error and spread of tests/test_samplers.py (``moments``); ``sw`` is the MGPS toy metric of
benchmarks/gmm_table.py with a fixed set of exact posterior samples.
"""
from __future__ import annotations

import functools
import math

import torch

from dipbench.seeding import generator
from dipbench.sliced_wasserstein import sliced_wasserstein

STATS: dict = {}


def stat(name: str):
    def deco(fn):
        STATS[name] = fn
        return fn
    return deco


def get(name: str):
    if name not in STATS:
        raise KeyError(f"unknown parity statistic '{name}'; known: {', '.join(sorted(STATS))}")
    return STATS[name]


def definition(name: str) -> str:
    return " ".join(get(name).__doc__.split())


def _flat(x):
    return x.double().reshape(x.shape[0], -1).cpu()


@functools.lru_cache(maxsize=None)
def _gauss_post(name):
    from . import problems
    p = problems.get(name)
    post = p.prior.posterior(p.y, p.op, p.sigma_y)
    return post["mean"].reshape(-1), post["cov"]


@stat("mean_err")
def mean_err(x, p):
    """Error of the sample mean to the exact posterior mean, relative to the prior mean's:
    |mean(x) - m_post| / |m_prior - m_post| (Euclidean norms over all entries; B samples)."""
    m, _ = _gauss_post(p.name)
    return float((_flat(x).mean(0) - m).norm() / (p.prior.mu64 - m).norm())


@stat("spread")
def spread(x, p):
    """Spread ratio tr(Cov_sample) / tr(Cov_post) (unbiased sample covariance of the B samples)."""
    _, cov = _gauss_post(p.name)
    return float(torch.cov(_flat(x).T).trace() / cov.trace())


@functools.lru_cache(maxsize=None)
def _exact_samples(name, n):
    """n exact posterior samples of a Gaussian-mixture problem, drawn with Cholesky factors of the
    components' posterior covariances (unique, so identical on every machine and thread count)."""
    from . import problems
    p = problems.get(name)
    post = p.prior.posterior(p.y, p.op, p.sigma_y)
    g = generator("parity", name, "exact", n)
    idx = torch.multinomial(post["log_weights"][0].exp(), n, replacement=True, generator=g)
    z = torch.randn((n, p.prior.n), generator=g, dtype=torch.float64)
    out = torch.empty((n, p.prior.n), dtype=torch.float64)
    eye = torch.eye(p.prior.n, dtype=torch.float64)
    for k in idx.unique().tolist():
        sel = (idx == k).nonzero().squeeze(1)
        L = torch.linalg.cholesky(post["covs"][k] + 1e-12 * eye)
        out[sel] = post["means"][0, k] + z[sel] @ L.T
    return out.reshape((n,) + tuple(p.prior.shape))


@stat("sw")
def sw(x, p):
    """Sliced Wasserstein-1 distance (100 random unit directions, seed stable_seed('parity',
    'slices')) between the B samples and 2000 exact posterior samples (fixed seed)."""
    ref = _exact_samples(p.name, 2000)
    return sliced_wasserstein(x, ref, 100, generator("parity", "slices"))


@stat("resid")
def resid(x, p):
    """Root-mean-square measurement residual mean_b ||A(x_b) - y|| / sqrt(m) (data fit of the
    samples; for problems without a closed-form posterior)."""
    with torch.no_grad():
        r = (p.op(x.float()) - p.y).reshape(x.shape[0], -1).double()
    return float((r.norm(dim=1) / math.sqrt(r.shape[1])).mean())


@stat("dist_prior_mean")
def dist_prior_mean(x, p):
    """Root-mean-square distance of the samples to the prior mean, mean_b ||x_b - mu|| / sqrt(n)
    (a scale summary for problems without a closed-form posterior)."""
    mu = p.prior.mu64 if hasattr(p.prior, "mu64") else torch.zeros(_flat(x).shape[1], dtype=torch.float64)
    d = _flat(x) - mu
    return float((d.norm(dim=1) / math.sqrt(d.shape[1])).mean())


@stat("err_xstar")
def err_xstar(x, p):
    """Root-mean-square error of the samples to the ground truth, mean_b ||x_b - x*|| / sqrt(n)."""
    d = _flat(x) - _flat(p.x_star)
    return float((d.norm(dim=1) / math.sqrt(d.shape[1])).mean())
