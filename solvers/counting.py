"""Counts network evaluations: forward calls (NFE) and backward passes through them (VJP).

Two networks can sit behind one prior: the denoiser ``D(x, sigma)`` (calls of the object) and,
where the prior has one, a consistency map ``consistency(x, sigma)`` (MAP-GA's one-step model).
Decision: ``nfe`` / ``vjp`` are the totals over both (every forward or backward pass through a
network costs about the same for networks of one size, and the run records -- run.json's
``nfe_per_image`` / ``vjp_per_image`` -- compare methods by total cost); ``cm_nfe`` / ``cm_vjp``
are the consistency model's share, so the denoiser's own counts are ``nfe - cm_nfe`` and
``vjp - cm_vjp``.  The wrapper has a ``consistency`` attribute only when the wrapped prior has
one, so ``hasattr(den, "consistency")`` means the same with or without counting.
"""
from __future__ import annotations

import torch

hook = None  # called on every forward call when set (progress heartbeat, stop requests: dipbench/progress.py)


class CountingDenoiser:
    def __init__(self, inner):
        self.inner = inner
        self.nfe = 0
        self.vjp = 0
        self.cm_nfe = 0
        self.cm_vjp = 0

    def __getattr__(self, name):  # shape, sigma_min, exact helpers, ...
        if name == "consistency":
            getattr(self.inner, "consistency")      # AttributeError when the prior has none
            return self._consistency
        return getattr(self.inner, name)

    def _count_backward(self, grad):
        self.vjp += 1
        return grad

    def _count_cm_backward(self, grad):
        self.vjp += 1
        self.cm_vjp += 1
        return grad

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        if hook is not None:
            hook(self)
        out = self.inner(x, sigma)
        if out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def _consistency(self, x: torch.Tensor, sigma) -> torch.Tensor:
        self.nfe += 1
        self.cm_nfe += 1
        out = self.inner.consistency(x, sigma)
        if out.requires_grad:
            out.register_hook(self._count_cm_backward)
        return out

    def reset(self):
        self.nfe = self.vjp = self.cm_nfe = self.cm_vjp = 0
