"""Super-resolution by block averaging (DDRM's SVD operator).

Each f x f block of each channel is averaged.  Per block, an orthonormal basis of R^(f^2) whose first
vector is the constant u = 1/f (a Householder reflection mapping e_1 to u) diagonalises the map:
the block mean is (1/f) <u, x_block>, so every singular value is 1/f and U is the identity on y.
"""
from __future__ import annotations

import torch

from .base import SVDOperator, flat
from .registry import register


def check_sr_factor(name: str, shape, factor) -> tuple:
    """((C, H, W), factor) for a downsampling operator; clear errors for a non-image shape or a
    factor that does not divide the size."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"{name} needs an image shape (C, H, W), got {shape}")
    _, h, w = shape
    factor = int(factor)
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"{name}: factor {factor} must divide the image size {h}x{w}")
    return shape, factor


class BlockAverage(SVDOperator):
    def __init__(self, shape, factor: int):
        shape, factor = check_sr_factor("sr_block", shape, factor)
        c, h, w = shape
        self.f = factor
        f2 = factor * factor
        u = torch.full((f2,), 1.0 / factor, dtype=torch.float64)
        v = torch.zeros(f2, dtype=torch.float64)
        v[0] = 1.0
        v = v - u
        q = torch.eye(f2, dtype=torch.float64)
        if v.norm() > 0:
            q = q - 2 * torch.outer(v, v) / (v @ v)
        self.Q = q.float()          # columns: orthonormal basis, column 0 = u
        super().__init__(shape, (c, h // factor, w // factor))

    def _blocks(self, x):
        b = x.shape[0]
        c, h, w = self.x_shape
        f = self.f
        return x.reshape(b, c, h // f, f, w // f, f).permute(0, 1, 2, 4, 3, 5).reshape(
            b, c, h // f, w // f, f * f)

    def _unblocks(self, p):
        b = p.shape[0]
        c, h, w = self.x_shape
        f = self.f
        return p.reshape(b, c, h // f, w // f, f, f).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)

    def singulars(self):
        return torch.full((self.m,), 1.0 / self.f, device=self.Q.device)

    def Vt(self, x):
        coef = self._blocks(x) @ self.Q
        b = x.shape[0]
        return torch.cat([coef[..., 0].reshape(b, -1), coef[..., 1:].reshape(b, -1)], dim=1)

    def V(self, c):
        c = self.pad_x(c) if c.shape[1] < self.n else c
        b = c.shape[0]
        ch, h, w = self.y_shape
        first = c[:, : self.m].reshape(b, ch, h, w, 1)
        rest = c[:, self.m:].reshape(b, ch, h, w, self.f ** 2 - 1)
        return self._unblocks(torch.cat([first, rest], dim=-1) @ self.Q.T)

    def Ut(self, y):
        return flat(y)

    def U(self, z):
        return z.reshape((-1,) + self.y_shape)

    # direct forms
    def forward(self, x):
        return self._blocks(x).mean(-1)

    def adjoint(self, y):
        f2 = self.f ** 2
        return self._unblocks(y.unsqueeze(-1).expand(*y.shape, f2) / f2)


@register("sr_block")
def sr_block(shape, factor: int = 2):
    return BlockAverage(shape, factor)
