"""Separable linear operators X -> A_h X A_w^T per channel, with their SVD (DDRM's Deblurring done
with the full kernel and singular values and coefficients ordered consistently).

The 2-D singular values are the products s_h[i] s_w[j], repeated per channel and sorted in
descending order with a stored permutation.  Values at or below ``threshold`` are dropped: the
operator *is* the truncated one (as in DDRM, whose measurements come from the same truncated map),
so ``threshold=0`` gives the exact convolution.  ``threshold_mode`` says which values the threshold
compares: ``'1d'`` the 1-D factors s_h, s_w (a 2-D value is then dropped when either factor is) --
what DDRM's ``Deblurring`` class does with its ``ZERO`` (bahjat-kawar/ddrm@32b6b3c
functions/svd_replacement.py: ``singulars_small[singulars_small < ZERO] = 0`` before the outer
product), so a paper built on that class that "zeroes singular values below 0.2" zeroes 1-D ones;
``'2d'`` the 2-D products.  ``deblur_uniform`` defaults to ``'1d'``; parity/records'
gauss8_deblur_ddrm problem reproduces DDRM's operator with it (relative error 4e-7).
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
    """X (C, H, W) -> A_h X A_w^T per channel, with A_h (H', H) and A_w (W', W): square factors
    (blurs, y of the image's shape) or wide ones (downsampling, ``sr_bicubic``).

    Coefficient order: the 2-D singular values s_h[i] s_w[j] (i < H', j < W') are sorted in
    descending order (stable, ties in (c, i, j) order); the x-space coefficients that no singular
    value touches (i >= H' or j >= W', the null space of a wide map) come after them.  The same
    (c, i, j) has the same rank in x-space (``perm``) and y-space (``uperm``), so coefficient k of
    Vt and of Ut belong to the same singular value."""

    def __init__(self, shape, a_h: torch.Tensor, a_w: torch.Tensor, threshold: float = 0.0,
                 threshold_mode: str = "2d"):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"separable operator needs an image shape (C, H, W), got {shape}")
        c, h, w = shape
        if a_h.dim() != 2 or a_w.dim() != 2 or a_h.shape[1] != h or a_w.shape[1] != w:
            raise ValueError(f"separable factors must be (H', {h}) and (W', {w}) matrices, got "
                             f"{tuple(a_h.shape)} and {tuple(a_w.shape)}")
        ho, wo = a_h.shape[0], a_w.shape[0]
        if ho > h or wo > w:
            raise ValueError("separable factors may not have more rows than columns")
        if threshold_mode not in ("2d", "1d"):
            raise ValueError(f"threshold_mode must be '2d' or '1d', got {threshold_mode!r}")
        uh, sh, vht = torch.linalg.svd(a_h.double(), full_matrices=True)
        uw, sw, vwt = torch.linalg.svd(a_w.double(), full_matrices=True)
        if threshold_mode == "1d":
            sh = torch.where(sh > threshold, sh, torch.zeros_like(sh))
            sw = torch.where(sw > threshold, sw, torch.zeros_like(sw))
            thr2 = 0.0
        else:
            thr2 = threshold
        s_y = torch.outer(sh, sw).expand(c, ho, wo)               # singular values on the y grid
        s_x = torch.full((c, h, w), -1.0, dtype=torch.float64)    # -1: untouched x coefficients
        s_x[:, :ho, :wo] = s_y
        self.perm = torch.sort(s_x.reshape(-1), descending=True, stable=True).indices
        self.uperm = torch.sort(s_y.reshape(-1), descending=True, stable=True).indices
        s_sorted = s_y.reshape(-1)[self.uperm]
        # also drop values that vanish (or are denormal) in float32: the operator is applied in
        # float32, so they are zero there and the pseudo-inverse must never divide by them
        tiny = torch.finfo(torch.float32).tiny
        k = int(((s_sorted > thr2) & (s_sorted >= tiny)).sum())
        self.Uh, self.Uw = uh.float(), uw.float()
        self.Vh, self.Vw = vht.T.contiguous().float(), vwt.T.contiguous().float()
        self.inv_perm = torch.argsort(self.perm)
        self.inv_uperm = torch.argsort(self.uperm)
        self._s = s_sorted[:k].float()
        super().__init__(shape, (c, ho, wo))

    def singulars(self):
        return self._s

    @staticmethod
    def _spectral(x, left, right, perm):
        return flat(left.T @ x @ right)[:, perm]

    @staticmethod
    def _spatial(c, left, right, inv_perm, shape):
        """Coefficients (B, k <= n) in rank order -> (B, *shape); missing ranks are zeros."""
        c = torch.nn.functional.pad(c, (0, inv_perm.numel() - c.shape[1]))
        z = c[:, inv_perm].reshape((-1,) + tuple(shape))
        return left @ z @ right.T

    def Vt(self, x):
        return self._spectral(x, self.Vh, self.Vw, self.perm)

    def V(self, c):
        return self._spatial(c, self.Vh, self.Vw, self.inv_perm, self.x_shape)

    def Ut(self, y):
        return self._spectral(y, self.Uh, self.Uw, self.uperm)

    def U(self, z):
        return self._spatial(z, self.Uh, self.Uw, self.inv_uperm, self.y_shape)


def box_kernel(size: int) -> torch.Tensor:
    return torch.full((size,), 1.0 / size, dtype=torch.float64)


@register("deblur_uniform")
def deblur_uniform(shape, size: int = 9, threshold: float = 0.03, threshold_mode: str = "1d"):
    """Uniform (box) blur of `size` taps on both axes, zero boundary, singular-value threshold on the
    1-D factors (``threshold_mode='1d'``, DDRM's rule) or on the 2-D products (``'2d'``)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"deblur_uniform: size must be a positive odd integer, got {size}")
    _, h, w = tuple(shape)
    k = box_kernel(size)
    return Separable(shape, conv_matrix(h, k), conv_matrix(w, k), threshold, threshold_mode)
