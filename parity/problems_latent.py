"""Latent parity problems: the analytic latent prior (``priors/latent_gaussian.py``) behind a linear decoder.

A Gaussian latent z ~ N(0, Sigma_z) of shape 3x4x4 stands in for a latent diffusion model's latent
space; a fixed, seeded linear "first stage" x = W z + b maps it to 3x8x8 images (the LDM decoder;
the encoder is W^+ (x - b), exact on the decoder's range).  The operator acts in pixel space, so
y = A(W z + b) + sigma_y e is linear-Gaussian in z: the exact pixel posterior is
N(W m_z + b, W C_z W^T) with (m_z, C_z) the latent posterior under A o decode.  The statistics
``mean_err_px`` / ``spread_px`` compare the solvers' pixel outputs with it.

The decoder is LDM-like and local: nearest-neighbour 2x upsampling of each latent channel, mixed
across channels (identity + 0.3 off-diagonal), plus a small seeded bias (std 0.02).  Locality makes
half inpainting split the latent space cleanly: the latents under the observed half are determined by
y (well conditioned), those under the missing half are exactly unobserved (their posterior comes from
the prior's spatial correlation alone), so hard data-consistency steps (ReSample) leave them to the
sampler, and the statistics see how each sampler treats them.
The latent prior is the smooth image-shaped Gaussian of ``parity.problems`` on the 4x4 grid
(squared-exponential kernel of length 1 latent pixel, channel correlation 0.6, variance 0.04,
nugget 1e-4): decoded samples stay well inside [-1, 1].

These problems register in ``parity.problems.PROBLEMS`` (imported by ``parity/__init__.py``).
"""
from __future__ import annotations

import functools

import torch

import operators
import priors
from dipbench.seeding import generator
from . import stats
from .problems import Problem, _chol_draw, problem, smooth_image_cov

LATENT_SHAPE = (3, 4, 4)
X_SHAPE = (3, 8, 8)

LATENT_DESC = ("analytic latent prior: z ~ N(0, 0.04 kron(C_ch, K) + 1e-4 I) on 3x4x4 latents (K "
               "squared-exponential, length 1 latent pixel; C_ch channel correlation 0.6); linear decoder "
               "x = W z + b to 3x8x8 images (W = channel mix (I + 0.3 off-diagonal) x nearest 2x upsampling, "
               "b ~ N(0, 0.02^2) seeded by stable_seed('parity', 'latent_decoder')); encoder W^+ (x - b)")


def latent_decoder(latent_shape=LATENT_SHAPE, x_shape=X_SHAPE):
    """(W (n_x, n_z) float64, b (n_x,) float64): the fixed seeded decoder described in the module."""
    g = generator("parity", "latent_decoder")
    c, h, w = latent_shape
    cx, hx, wx = x_shape
    fy, fx = hx // h, wx // w
    up = torch.zeros(hx * wx, h * w, dtype=torch.float64)
    for i in range(hx):
        for j in range(wx):
            up[i * wx + j, (i // fy) * w + j // fx] = 1.0
    mix = torch.eye(cx, c, dtype=torch.float64) + 0.3 * (1 - torch.eye(cx, c, dtype=torch.float64))
    W = torch.kron(mix, up)
    b = 0.02 * torch.randn(cx * hx * wx, generator=g, dtype=torch.float64)
    return W, b


def latent_prior():
    W, b = latent_decoder()
    cov = smooth_image_cov(LATENT_SHAPE, scale=0.04, length=1.0)
    return priors.build("latent_gaussian", latent_mean=torch.zeros(cov.shape[0]), latent_cov=cov, decoder=W,
                        x_shape=X_SHAPE, bias=b, latent_shape=LATENT_SHAPE)


def _measure_latent(name, prior, op, sigma_y, description):
    g = generator("parity", name)
    z = torch.randn(prior.n, generator=g, dtype=torch.float64)
    z = _chol_draw(prior.mu64, prior.cov(), z).float().reshape((1,) + LATENT_SHAPE)
    x = prior.decode(z)
    y = op(x)
    y = y + sigma_y * torch.randn(y.shape, generator=g)
    return Problem(name, prior, op, y, float(sigma_y), x, "latent_gaussian", description,
                   {"latent_shape": list(LATENT_SHAPE), "x_shape": list(X_SHAPE)})


@problem("lgauss8_inpaint_half")
def _lgauss8_inpaint_half():
    prior = latent_prior()
    op = operators.build("inpaint_half", shape=X_SHAPE)
    return _measure_latent("lgauss8_inpaint_half", prior, op, 0.05,
                           LATENT_DESC + "; inpaint_half in pixel space (right half missing, all channels); "
                           "sigma_y = 0.05 ([-1, 1] units); y from seed stable_seed('parity', name)")


# --- statistics against the exact pixel-space posterior --------------------------------------
@functools.lru_cache(maxsize=None)
def pixel_posterior(name):
    """(mean (n_x,), cov (n_x, n_x), prior mean (n_x,)) of the exact pixel posterior, float64."""
    from . import problems
    p = problems.get(name)
    post = p.prior.latent_posterior(p.y, p.op, p.sigma_y)
    W = p.prior.W.double()
    b = p.prior.b.double()
    m = W @ post["mean"].reshape(-1).double() + b
    cov = W @ post["cov"].double() @ W.T
    return m, cov, W @ p.prior.mu64 + b


@stats.stat("mean_err_px")
def mean_err_px(x, p):
    """Latent problems: error of the sample mean of the decoded outputs to the exact pixel posterior
    mean W m_z + b, relative to the decoded prior mean's: |mean(x) - m_post| / |m_prior - m_post|
    (Euclidean norms over all pixels; B samples)."""
    m, _, m0 = pixel_posterior(p.name)
    return float((x.double().reshape(x.shape[0], -1).cpu().mean(0) - m).norm() / (m0 - m).norm())


@stats.stat("spread_px")
def spread_px(x, p):
    """Latent problems: spread ratio tr(Cov_sample) / tr(W C_z W^T) of the decoded outputs against the
    exact pixel posterior covariance (unbiased sample covariance of the B samples)."""
    _, cov, _ = pixel_posterior(p.name)
    return float(torch.cov(x.double().reshape(x.shape[0], -1).cpu().T).trace() / cov.trace())
