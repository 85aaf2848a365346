"""Counts denoiser forward calls (NFE) and backward passes through it (VJP)."""
from __future__ import annotations

import torch

hook = None  # called on every forward call when set (progress heartbeat, stop requests: dipbench/progress.py)


class CountingDenoiser:
    def __init__(self, inner):
        self.inner = inner
        self.nfe = 0
        self.vjp = 0

    def __getattr__(self, name):  # shape, sigma_min, exact helpers, ...
        return getattr(self.inner, name)

    def _count_backward(self, grad):
        self.vjp += 1
        return grad

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        if hook is not None:
            hook(self)
        out = self.inner(x, sigma)
        if out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def reset(self):
        self.nfe = self.vjp = 0
