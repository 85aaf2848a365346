"""Super-resolution by bicubic downsampling (the DPS / DDRM ``SRConv`` kind of operator), with its
SVD through the separable 1-D factors (operators/separable.py).

Per axis, output pixel i of n/f averages the input around its centre c_i = (i + 0.5) f - 0.5 with
the Keys cubic kernel (a = -0.5, the bicubic of PIL and Matlab) stretched by f (antialiased, as
PIL's and torch's ``antialias=True`` resize): weight(j) ∝ k((j - c_i) / f), rows normalised to sum
to 1 (at the borders the taps that fall outside are dropped and the rest renormalised).  Unlike
block averaging (``sr_block``: every singular value equal to 1/f), the singular values spread
from ~1 down to small values, so the operator is ill-conditioned like a blur.
"""
from __future__ import annotations

import torch

from .registry import register
from .separable import Separable
from .sr_block import check_sr_factor


def keys_cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def bicubic_matrix(n: int, factor: int, a: float = -0.5) -> torch.Tensor:
    """(n // factor, n) matrix of the 1-D antialiased bicubic downsampling by ``factor``."""
    centres = (torch.arange(n // factor, dtype=torch.float64) + 0.5) * factor - 0.5
    j = torch.arange(n, dtype=torch.float64)
    m = keys_cubic((j[None, :] - centres[:, None]) / factor, a)
    return m / m.sum(1, keepdim=True)


@register("sr_bicubic")
def sr_bicubic(shape, factor: int = 4, threshold: float = 0.0):
    """Bicubic downsampling by ``factor`` (dividing the size); singular values <= threshold dropped."""
    shape, factor = check_sr_factor("sr_bicubic", shape, factor)
    _, h, w = shape
    return Separable(shape, bicubic_matrix(h, factor), bicubic_matrix(w, factor), threshold)
