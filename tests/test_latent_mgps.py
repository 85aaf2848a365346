"""Latent MGPS (solvers/latent_mgps.py) on the analytic latent Gaussian prior, whose pixel-space
posterior is exact (priors/latent_gaussian.py), checked like the other latent solvers
(tests/test_samplers.py ``test_latent_samplers``), plus an identity check against pixel MGPS."""
from __future__ import annotations

import math

import pytest
import torch

import operators
import priors
import solvers


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def gen(s):
    return torch.Generator().manual_seed(s)


def test_latent_mgps_with_an_identity_decoder_is_pixel_mgps():
    """With decode = identity the latent prior is the pixel Gaussian and A o decode = A, so latent
    MGPS with pixel MGPS's midpoint rule (alpha_switch = 0: alpha = 0.5 throughout) and the same
    step counts is the same computation: equal to float rounding (1e-5) for one seed."""
    n, shape = 12, (12,)
    g = gen(0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    cov = (q * torch.logspace(-1.5, 0, n, dtype=torch.float64)) @ q.T
    lat = priors.build("latent_gaussian", latent_mean=torch.zeros(n), latent_cov=cov,
                       decoder=torch.eye(n, dtype=torch.float64), x_shape=shape)
    pix = priors.build("gaussian", mean=torch.zeros(n), cov=cov)
    op = operators.build("matrix", shape, matrix=torch.randn(4, n, generator=g) / math.sqrt(n))
    y = op(pix.sample(3, g)) + 0.05 * torch.randn(3, 4, generator=g)
    params = dict(steps=30, grad_steps=3, grad_steps_first=5, first_window=5, grad_steps_last=2,
                  last_window=5, grad_steps_every=4, every=10)
    a = solvers.build("latent_mgps", alpha_switch=0, **params).solve(y, op, lat, 0.05, gen(1))
    b = solvers.build("mgps", **params).solve(y, op, pix, 0.05, gen(1))
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_latent_mgps_midpoint_rule():
    """The ffhq_ldm rule: alpha = 1 (midpoint = the next timestep) while t' <= 500, else 0.5."""
    alg = solvers.build("latent_mgps")
    assert [alg.midpoint(t) for t in (1, 2, 300, 500, 501, 999)] == [1, 2, 300, 500, 250, 499]


def latent_problem():
    """As tests/test_samplers.py: 12-d latent, variances 10^-1.5 .. 1, random linear decoder to
    3x4x4, half inpainting in pixel space, sy = 0.05."""
    g = gen(11)
    n, x_shape = 12, (3, 4, 4)
    w = torch.randn(48, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    lcov = torch.diag(torch.logspace(-1.5, 0, n, dtype=torch.float64))
    prior = priors.build("latent_gaussian", latent_mean=torch.zeros(n), latent_cov=lcov, decoder=w,
                         x_shape=x_shape)
    op = operators.build("inpaint_half", shape=x_shape)
    sy = 0.05
    y = op(prior.sample_pixels(1, g))
    y = y + sy * torch.randn(y.shape, generator=g)
    return prior, op, y, sy


def test_latent_mgps_against_the_exact_posterior():
    """100 samples, the defaults (300 steps, the ffhq_ldm rules): pixel outputs of the right shape
    whose mean is close to the exact pixel posterior mean, relative to the prior mean's distance
    (measured 0.031, Monte-Carlo error ~0.012; the latent samplers' common bound is 0.6, asserted
    0.1 here), and whose latent spread tr Cov / tr Cov_post is that of a posterior sampler, a little
    under-dispersed (measured 0.64; asserted within [0.4, 1.2]).  With 100 steps it is
    over-dispersed (measured 5.3) and with pixel MGPS's alpha = 0.5 throughout worse still
    (err 0.18, spread 13 at 100 steps): the ffhq_ldm midpoint rule matters here."""
    prior, op, y, sy = latent_problem()
    b = 100
    yb = y.expand((b,) + tuple(y.shape[1:])).clone()
    den = solvers.CountingDenoiser(prior)
    out = solvers.build("latent_mgps").solve(yb, op, den, sy, gen(2))
    assert out.shape == (b, 3, 4, 4) and torch.isfinite(out).all()
    post = prior.latent_posterior(y, op, sy)
    pm = prior.decode(post["mean"].float()).double().reshape(-1)
    pri = prior.decode(prior.mu.reshape(1, -1)).double().reshape(-1)
    err = float((out.double().reshape(b, -1).mean(0) - pm).norm() / (pri - pm).norm())
    assert err < 0.1, err
    z = prior.encode(out).double().reshape(b, -1)
    spread = float(torch.cov(z.T).trace() / post["cov"].trace())
    assert 0.4 < spread < 1.2, spread
    assert den.nfe > 0 and den.vjp > 0
