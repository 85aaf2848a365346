"""Time spent inside the network during a solve: forward calls and their backward passes (VJPs).

``TimingDenoiser`` is a ``CountingDenoiser`` that also adds up wall time:

* ``fwd_s``: every forward call (denoiser and consistency map), from entry to return;
* ``bwd_s``: every backward pass through a call, from the moment the gradient reaches the call's
  output to the moment it leaves through the call's input.  Two identity autograd functions mark
  the boundary: ``_Exit`` on the output (its backward runs first and starts the clock) and
  ``_Enter`` on the input (its backward runs once the network's backward is done and stops it).
  The markers return their input unchanged (a view), so values and gradients are untouched.

On a GPU every boundary synchronises the device first, so the clock measures finished kernels, not
queued ones.  ``network_s = fwd_s + bwd_s``; a solver's overhead is ``wall / network_s`` of the
same run (benchmarks/perf.py), so a load change on a shared machine moves numerator and
denominator together.

A backward is timed when the call's input requires grad (every VJP a solver takes: the gradient
is with respect to the input).  A call whose input does not require grad but whose output does
(parameters with grad) is still counted as a VJP but its backward is not timed.
"""
from __future__ import annotations

import time

import torch

from .counting import CountingDenoiser


def _sync(x: torch.Tensor):
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


class _Clock:
    __slots__ = ("start",)

    def __init__(self):
        self.start = None


class _Exit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, owner, clock):
        ctx.owner, ctx.clock = owner, clock
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        _sync(g)
        ctx.clock.start = time.perf_counter()
        return g, None, None


class _Enter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, owner, clock):
        ctx.owner, ctx.clock = owner, clock
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        _sync(g)
        if ctx.clock.start is not None:
            ctx.owner.bwd_s += time.perf_counter() - ctx.clock.start
            ctx.clock.start = None
        return g, None, None


class TimingDenoiser(CountingDenoiser):
    def __init__(self, inner):
        super().__init__(_TimedInner(inner, self))
        self.fwd_s = 0.0
        self.bwd_s = 0.0

    @property
    def network_s(self) -> float:
        return self.fwd_s + self.bwd_s

    def _timed(self, fn, x, sigma):
        track = torch.is_grad_enabled() and x.requires_grad
        clock = _Clock()
        _sync(x)
        t = time.perf_counter()
        xin = _Enter.apply(x, self, clock) if track else x
        out = fn(xin, sigma)
        _sync(out)
        self.fwd_s += time.perf_counter() - t
        if track and out.requires_grad:
            out = _Exit.apply(out, self, clock)
        return out

    def reset(self):
        super().reset()
        self.fwd_s = self.bwd_s = 0.0


class _TimedInner:
    """What a TimingDenoiser hands to CountingDenoiser as ``inner``: the prior with its two network
    entry points timed (attributes pass through)."""

    def __init__(self, prior, owner):
        object.__setattr__(self, "_prior", prior)
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name):
        attr = getattr(self._prior, name)
        if name == "consistency":
            return lambda x, sigma: self._owner._timed(attr, x, sigma)
        return attr

    def __call__(self, x, sigma):
        return self._owner._timed(self._prior, x, sigma)
