"""The analytic priors against independent dense computations."""
import math

import torch

import operators
import priors
from tests.helpers import random_gaussian


def dense(op, n, shape):
    eye = torch.eye(n).reshape((n,) + tuple(shape))
    return op(eye).reshape(n, -1).T.double()


def test_gaussian_denoiser_matches_formula():
    prior, g = random_gaussian((3, 4, 4))
    cov, mu = prior.cov(), prior.mu64
    x = torch.randn(5, 3, 4, 4, generator=g)
    for s in (0.01, 0.3, 5.0):
        ref = mu + (cov @ torch.linalg.inv(cov + s * s * torch.eye(48, dtype=torch.float64))
                    @ (x.reshape(5, -1).double() - mu).T).T
        assert torch.allclose(prior(x, s).reshape(5, -1).double(), ref, atol=1e-4)


def test_gaussian_posterior_matches_dense_formula():
    """mean = mu + S H^T (H S H^T + sy^2 I)^-1 (y - H mu); cov = S - S H^T (...)^-1 H S."""
    shape = (3, 4, 4)
    prior, g = random_gaussian(shape)
    for op in (operators.build("inpaint_half", shape), operators.build("sr_block", shape, factor=2)):
        H, S, mu = dense(op, 48, shape), prior.cov(), prior.mu64
        y = op(prior.sample(2, g)) + 0.05 * torch.randn(2, *op.y_shape, generator=g)
        K = H @ S @ H.T + 0.05 ** 2 * torch.eye(H.shape[0], dtype=torch.float64)
        mean = mu + (S @ H.T @ torch.linalg.solve(K, (y.reshape(2, -1).double() - H @ mu).T)).T
        cov = S - S @ H.T @ torch.linalg.solve(K, H @ S)
        post = prior.posterior(y, op, 0.05)
        assert torch.allclose(post["mean"].reshape(2, -1), mean, atol=1e-5)
        assert torch.allclose(post["cov"], cov, atol=1e-6)
        assert torch.allclose(prior.map_estimate(y, op, 0.05).double().reshape(2, -1), mean, atol=1e-5)


def test_gaussian_exact_samples_have_posterior_moments():
    shape = (12,)
    prior, g = random_gaussian(shape, lo=0.01, hi=1.0)
    A = torch.randn(5, 12, generator=g)
    op = operators.build("matrix", shape, matrix=A)
    y = op(prior.sample(1, g)) + 0.1 * torch.randn(1, 5, generator=g)
    post = prior.posterior(y, op, 0.1)
    s = prior.sample_posterior(y, op, 0.1, 20000, g)[0].double()
    assert (s.mean(0) - post["mean"][0]).norm() < 0.03 * post["cov"].diagonal().sum().sqrt()
    assert torch.allclose(torch.cov(s.T), post["cov"], atol=0.03 * post["cov"].diagonal().max())
    p = prior.sample(20000, g).double()
    assert torch.allclose(torch.cov(p.T), prior.cov(), atol=0.05 * prior.cov().diagonal().max())


def gmm_toy(d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[8.0 * i, 8.0 * j] for i in range(-1, 2) for j in range(-1, 2)]).repeat(1, d // 2)
    w = torch.rand(9, generator=g) + 0.1
    return priors.build("gmm", weights=w, means=means, covs=torch.eye(d)), g


def test_gmm_denoiser_is_tweedie_of_the_mixture():
    """D(x, s) = x + s^2 grad log p_s(x), with p_s = sum w_k N(m_k, C_k + s^2 I) by autograd."""
    prior, g = gmm_toy()
    x = 6 * torch.randn(7, 4, generator=g, dtype=torch.float64)
    for s in (0.2, 1.0, 4.0):
        xr = x.clone().requires_grad_(True)
        comps = [math.log(w) + torch.distributions.MultivariateNormal(
            m.double(), (1 + s * s) * torch.eye(4, dtype=torch.float64)).log_prob(xr)
            for w, m in zip(prior.logw64.exp().tolist(), prior.means)]
        logp = torch.logsumexp(torch.stack(comps, 1), 1).sum()
        (grad,) = torch.autograd.grad(logp, xr)
        assert torch.allclose(prior(x.float(), s).double(), x + s * s * grad, atol=1e-3)


def test_gmm_posterior_weights_and_map():
    prior, g = gmm_toy()
    A = torch.randn(2, 4, generator=g)
    op = operators.build("matrix", (4,), matrix=A)
    x = prior.sample(1, g)
    y = op(x) + 0.1 * torch.randn(1, 2, generator=g)
    post = prior.posterior(y, op, 0.1)
    assert torch.allclose(post["log_weights"].exp().sum(1), torch.ones(1, dtype=torch.float64))
    xmap = prior.map_estimate(y, op, 0.1)
    # the MAP is a stationary point of the posterior density and beats every component mean
    dens = prior.log_posterior_density(torch.cat([xmap.double(), post["means"][0]]), post, 0)
    assert dens[0] >= dens[1:].max() - 1e-9
    xr = xmap.double().clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(prior.log_posterior_density(xr, post, 0).sum(), xr)
    # float32 output: rounding (~1e-6 relative on |x| ~ 10) times the posterior precision
    # (up to ~|A|^2 / sigma_y^2 ~ 1e3) bounds the gradient at ~1e-2; an unconverged MAP gives >> 1
    assert gr.norm() < 1e-2
    s = prior.sample_posterior(y, op, 0.1, 4000, g)[0]
    k = post["log_weights"][0].argmax()
    near = ((s.double() - post["means"][0, k]).norm(dim=1) < 4).double().mean()
    assert abs(float(near) - float(post["log_weights"][0, k].exp())) < 0.05
