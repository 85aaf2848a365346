"""High dynamic range (nonlinear): y = clip(alpha * x, -1, 1), alpha = 2 (DAPS, RED-diff, MGPS).

y has the shape of x.  Provides 'forward' only; differentiable almost everywhere (gradient alpha
where |alpha x| < 1, 0 on saturated pixels).
"""
from __future__ import annotations

from .base import Operator
from .registry import register


class HDR(Operator):
    def __init__(self, shape, alpha: float = 2.0):
        if not alpha > 0:
            raise ValueError(f"hdr: alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        super().__init__(shape, shape)

    def forward(self, x):
        return (self.alpha * x).clamp(-1.0, 1.0)


@register("hdr")
def hdr(shape, alpha: float = 2.0):
    return HDR(shape, alpha)
