"""Separable linear operators X -> A_h X A_w^T per channel, with their SVD (DDRM's Deblurring done
with the full kernel and singular values and coefficients ordered consistently).

The 2-D singular values are the products s_h[i] s_w[j], repeated per channel and sorted in
descending order with a stored permutation.  Values at or below ``threshold`` are dropped: the
operator *is* the truncated one (as in DDRM, whose measurements come from the same truncated map),
so ``threshold=0`` gives the exact convolution.  ``threshold_mode='1d'`` applies the threshold to
the 1-D factors instead (DDRM's own choice).
"""
from __future__ import annotations

import torch

from .base import SVDOperator, flat
from .registry import register


def conv_matrix(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """n x n matrix of a centred 1-D convolution with zero boundary (all taps kept)."""
    kernel = torch.as_tensor(kernel, dtype=torch.float64)
    r = kernel.numel() // 2
    a = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for t, kv in enumerate(kernel):
            j = i + t - r
            if 0 <= j < n:
                a[i, j] = kv
    return a


class Separable(SVDOperator):
    def __init__(self, shape, a_h: torch.Tensor, a_w: torch.Tensor, threshold: float = 0.0,
                 threshold_mode: str = "2d"):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"separable operator needs an image shape (C, H, W), got {shape}")
        c, h, w = shape
        if a_h.shape != (h, h) or a_w.shape != (w, w):
            raise ValueError("separable factors must be square and match the image size")
        if threshold_mode not in ("2d", "1d"):
            raise ValueError(f"threshold_mode must be '2d' or '1d', got {threshold_mode!r}")
        uh, sh, vht = torch.linalg.svd(a_h.double())
        uw, sw, vwt = torch.linalg.svd(a_w.double())
        if threshold_mode == "1d":
            sh = torch.where(sh > threshold, sh, torch.zeros_like(sh))
            sw = torch.where(sw > threshold, sw, torch.zeros_like(sw))
            thr2 = 0.0
        else:
            thr2 = threshold
        s2 = torch.outer(sh, sw).expand(c, h, w).reshape(-1)
        order = torch.sort(s2, descending=True, stable=True).indices
        s_sorted = s2[order]
        # also drop values that vanish (or are denormal) in float32: the operator is applied in
        # float32, so they are zero there and the pseudo-inverse must never divide by them
        tiny = torch.finfo(torch.float32).tiny
        k = int(((s_sorted > thr2) & (s_sorted >= tiny)).sum())
        self.Uh, self.Uw = uh.float(), uw.float()
        self.Vh, self.Vw = vht.T.contiguous().float(), vwt.T.contiguous().float()
        self.perm = order
        self.inv_perm = torch.argsort(order)
        self._s = s_sorted[:k].float()
        super().__init__(shape, shape)

    def singulars(self):
        return self._s

    def _spectral(self, x, left, right):
        return flat(left.T @ x @ right)[:, self.perm]

    def _spatial(self, c, left, right):
        c = self.pad_x(c) if c.shape[1] < self.n else c
        z = c[:, self.inv_perm].reshape((-1,) + self.x_shape)
        return left @ z @ right.T

    def Vt(self, x):
        return self._spectral(x, self.Vh, self.Vw)

    def V(self, c):
        return self._spatial(c, self.Vh, self.Vw)

    def Ut(self, y):
        return self._spectral(y, self.Uh, self.Uw)

    def U(self, z):
        return self._spatial(z, self.Uh, self.Uw)


def box_kernel(size: int) -> torch.Tensor:
    return torch.full((size,), 1.0 / size, dtype=torch.float64)


@register("deblur_uniform")
def deblur_uniform(shape, size: int = 9, threshold: float = 0.03, threshold_mode: str = "2d"):
    """Uniform (box) blur of `size` taps on both axes, zero boundary, singular-value threshold."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"deblur_uniform: size must be a positive odd integer, got {size}")
    _, h, w = tuple(shape)
    k = box_kernel(size)
    return Separable(shape, conv_matrix(h, k), conv_matrix(w, k), threshold, threshold_mode)
