"""Colorization (DDRM's): y = per-pixel mean of the 3 channels, y shape (1, H, W).

Per pixel the map is the row r = (1/3, 1/3, 1/3) acting on (R, G, B).  Its SVD: r = s u v^T with
u = 1, v = (1, 1, 1) / sqrt(3) and s = |r| = sqrt(3 * 1/9) = 1/sqrt(3) ~ 0.57735.  So every singular
value is 1/sqrt(3), U is the identity on y, and V is, per pixel, a 3 x 3 orthogonal matrix Q whose
first column is v (a Householder reflection mapping e_1 to v); the other two columns span the
colour directions the measurement cannot see.

Spectral coefficient order: Vt(x) = [<v, x_p> for all pixels p (H*W, row-major), then the second and
third coordinates of every pixel (2*H*W, pixel-major)].  DDRM uses the row (0.3333, 0.3334, 0.3333);
this is the exact mean.
"""
from __future__ import annotations

import math

import torch

from .base import OperatorShapeError, SVDOperator, flat
from .registry import register


class Colorization(SVDOperator):
    def __init__(self, shape):
        shape = tuple(shape)
        if len(shape) != 3 or shape[0] != 3:
            raise OperatorShapeError(f"colorize needs an RGB image shape (3, H, W), got {shape}")
        _, h, w = shape
        v = torch.full((3,), 1 / math.sqrt(3), dtype=torch.float64)
        d = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64) - v
        q = torch.eye(3, dtype=torch.float64) - 2 * torch.outer(d, d) / (d @ d)
        self.Q = q.float()   # columns orthonormal, column 0 = v
        super().__init__(shape, (1, h, w))

    def singulars(self):
        return torch.full((self.m,), 1 / math.sqrt(3), device=self.Q.device)

    def Vt(self, x):
        b = x.shape[0]
        coef = torch.einsum("bchw,ck->bhwk", x, self.Q)          # (B, H, W, 3)
        return torch.cat([coef[..., 0].reshape(b, -1), coef[..., 1:].reshape(b, -1)], dim=1)

    def V(self, c):
        c = self.pad_x(c) if c.shape[1] < self.n else c
        b = c.shape[0]
        _, h, w = self.x_shape
        first = c[:, : self.m].reshape(b, h, w, 1)
        rest = c[:, self.m:].reshape(b, h, w, 2)
        return torch.einsum("bhwk,ck->bchw", torch.cat([first, rest], dim=-1), self.Q)

    def Ut(self, y):
        return flat(y)

    def U(self, z):
        return z.reshape((-1,) + self.y_shape)

    # direct forms (same maps)
    def forward(self, x):
        return x.mean(dim=1, keepdim=True)

    def adjoint(self, y):
        return y.expand(y.shape[0], 3, *y.shape[2:]) / 3

    def to_image(self, y):
        """The grey measurement shown on all three channels."""
        return y.expand(y.shape[0], 3, *y.shape[2:])


@register("colorize")
def colorize(shape):
    return Colorization(shape)
