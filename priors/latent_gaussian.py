"""Analytic latent prior: z ~ N(mu, Sigma) in latent space, x = decode(z) = W z + b.

The denoiser acts in latent space (``shape`` is the latent shape), as a latent diffusion model's does;
``encode``/``decode`` map between spaces (encode is the least-squares inverse W^+ (x - b)).
Because the decoder is linear, y = H(W z + b) + e is a linear-Gaussian problem in z: the exact
latent posterior is the latent Gaussian's posterior under the composite operator H o decode, and the
exact MAP in pixel space is decode(z_MAP).
"""
from __future__ import annotations

import math

import torch

from .gaussian import GaussianPrior
from .registry import register


class _Composite:
    """H o decode as an operator on latents (forward only; enough for the exact posterior)."""

    def __init__(self, op, prior):
        self.op, self.prior = op, prior
        self.x_shape = prior.shape

    def __call__(self, z):
        return self.op(self.prior.decode(z))

    def _device(self):
        return self.op._device()


class LatentGaussianPrior(GaussianPrior):
    def __init__(self, latent_mean, latent_cov, decoder, x_shape, bias=None, latent_shape=None):
        super().__init__(latent_mean, latent_cov, latent_shape)
        self.x_shape = tuple(x_shape)
        nx = math.prod(self.x_shape)
        w = torch.as_tensor(decoder, dtype=torch.float64)
        if w.shape != (nx, self.n):
            raise ValueError(f"decoder must be ({nx}, {self.n}), got {tuple(w.shape)}")
        self.W = w.float()
        self.W_pinv = torch.linalg.pinv(w).float()
        self.b = (torch.zeros(nx) if bias is None else torch.as_tensor(bias).reshape(-1)).float()
        self._composites: dict = {}

    def decode(self, z):
        return (z.reshape(z.shape[0], -1) @ self.W.T + self.b).reshape((-1,) + self.x_shape)

    def encode(self, x):
        return ((x.reshape(x.shape[0], -1) - self.b) @ self.W_pinv.T).reshape((-1,) + self.shape)

    def _latent_op(self, op):
        hit = self._composites.get(id(op))
        if hit is None or hit.op is not op:
            hit = self._composites[id(op)] = _Composite(op, self)
        return hit

    def latent_posterior(self, y, op, sigma_y):
        return super().posterior(y, self._latent_op(op), sigma_y)

    def map_estimate(self, y, op, sigma_y):
        """Exact MAP in pixel space: decode(latent posterior mean)."""
        z = super().posterior(y, self._latent_op(op), sigma_y)["mean"].float()
        return self.decode(z.to(self.W.device)).to(y.device)

    def sample_posterior(self, y, op, sigma_y, n, generator):
        z = super().sample_posterior(y, self._latent_op(op), sigma_y, n, generator)
        b = z.shape[0]
        return self.decode(z.reshape((b * n,) + self.shape)).reshape((b, n) + self.x_shape)

    def sample_pixels(self, n, generator):
        return self.decode(self.sample(n, generator))


@register("latent_gaussian")
def latent_gaussian(latent_mean, latent_cov, decoder, x_shape, bias=None, latent_shape=None):
    return LatentGaussianPrior(latent_mean, latent_cov, decoder, x_shape, bias, latent_shape)
