"""Fourier phase retrieval (nonlinear): y = |F(pad(x))|, as in DPS.

x is used as it is, in [-1, 1] (DPS and InverseBench; DAPS maps to (x + 1) / 2 first).  Each channel
is zero-padded by p = int(oversample / 8 * H) rows on top and bottom and int(oversample / 8 * W)
columns left and right (DPS's rule: oversample 2.0 pads 256 -> 384), then
y = fftshift(|fft2(x_pad, norm="ortho")|), the magnitude of the orthonormal 2-D DFT with the zero
frequency moved to the centre (DPS's ifftshift of the input only changes phases).

y shape: (C, H + 2 p_h, W + 2 p_w), e.g. (3, 384, 384) for (3, 256, 256) and (3, 48, 48) for
(3, 32, 32).  Parseval: ||y|| = ||x|| (orthonormal DFT).  Provides 'forward' only; it is
differentiable (torch's |z| has gradient z / |z|, and 0 at z = 0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Operator
from .registry import register


class PhaseRetrieval(Operator):
    def __init__(self, shape, oversample: float = 2.0):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"phase_retrieval needs an image shape (C, H, W), got {shape}")
        c, h, w = shape
        if oversample < 0:
            raise ValueError(f"phase_retrieval: oversample must be >= 0, got {oversample}")
        self.oversample = float(oversample)
        self.ph = int(oversample / 8 * h)
        self.pw = int(oversample / 8 * w)
        super().__init__(shape, (c, h + 2 * self.ph, w + 2 * self.pw))

    def forward(self, x):
        xp = F.pad(x, (self.pw, self.pw, self.ph, self.ph))
        spec = torch.fft.fft2(xp, norm="ortho")
        return torch.fft.fftshift(spec.abs(), dim=(-2, -1))

    def to_image(self, y):
        return None


@register("phase_retrieval")
def phase_retrieval(shape, oversample: float = 2.0):
    return PhaseRetrieval(shape, oversample)
