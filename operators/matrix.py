"""A dense matrix with its SVD, for vector-shaped priors (e.g. the Gaussian-mixture toy)."""
from __future__ import annotations

import math

import torch

from .base import SVDOperator, flat
from .registry import register


class MatrixOperator(SVDOperator):
    def __init__(self, shape, matrix: torch.Tensor, rtol: float = 1e-7):
        shape = tuple(shape) if not isinstance(shape, int) else (shape,)
        a = torch.as_tensor(matrix, dtype=torch.float64)
        if a.ndim != 2 or a.shape[1] != math.prod(shape):
            raise ValueError(f"matrix of shape {tuple(a.shape)} does not act on inputs of shape {shape}")
        u, s, vt = torch.linalg.svd(a, full_matrices=True)
        k = int((s > rtol * s.max()).sum()) if s.numel() else 0
        self.A = a.float()
        self.Umat, self.Vmat = u.float(), vt.T.contiguous().float()
        self._s = s[:k].float()
        super().__init__(shape, (a.shape[0],))

    def singulars(self):
        return self._s

    def Vt(self, x):
        return flat(x) @ self.Vmat

    def V(self, c):
        c = self.pad_x(c) if c.shape[1] < self.n else c
        return (c @ self.Vmat.T).reshape((-1,) + self.x_shape)

    def Ut(self, y):
        return y @ self.Umat

    def U(self, z):
        if z.shape[1] < self.m:
            z = torch.nn.functional.pad(z, (0, self.m - z.shape[1]))
        return z @ self.Umat.T

    def forward(self, x):
        return flat(x) @ self.A.T

    def adjoint(self, y):
        return (y @ self.A).reshape((-1,) + self.x_shape)


@register("matrix")
def matrix(shape, matrix):
    return MatrixOperator(shape, matrix)
