"""Latent DAPS (DAPS, Zhang, Chu et al., CVPR'25, latent-diffusion variant; ANCHORS 2.7).

The DAPS loop of ``solvers/daps.py`` run on a latent prior (one with ``encode`` / ``decode``): the
annealing, the probability-flow ODE for z0-hat and the Langevin dynamics all act on latents z, the
likelihood is exp(-||A(decode(z)) - y||^2 / tau^2) with the gradient taken through the decoder and
the operator by autograd, and the output is decode(z0^y).  Same defaults as DAPS-1K (DAPS's LDM task
blocks use other tuned lr / step values per task: set them in config); the operator needs only a
forward map.
"""
from __future__ import annotations

import torch

from .daps import DAPSBase
from .registry import register


class LatentForward:
    """A o decode as a forward-only operator on latents."""
    provides = frozenset({"forward"})
    linear = False

    def __init__(self, op, prior):
        self.op, self.prior = op, prior
        self.x_shape = tuple(prior.shape)

    def __call__(self, z):
        return self.op(self.prior.decode(z))


def require_latent(den):
    if not (hasattr(den, "encode") and hasattr(den, "decode")):
        raise TypeError(f"{type(den).__name__} is not a latent prior (needs encode/decode)")


@register("latent_daps")
class LatentDAPS(DAPSBase):
    defaults = dict(DAPSBase.defaults)

    def solve(self, y, op, den, sigma_y, generator):
        require_latent(den)
        z = super().solve(y, LatentForward(op, den), den, sigma_y, generator)
        with torch.no_grad():
            return den.decode(z)
