"""Time inside the network during a solve (solvers/timing.py): forward calls and backward passes are
timed, the solver's own work is not, and values and gradients are untouched."""
from __future__ import annotations

import time

import pytest
import torch

from solvers.timing import TimingDenoiser

FWD, BWD = 0.02, 0.03


class _SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 0.9 * x

    @staticmethod
    def backward(ctx, g):
        time.sleep(BWD)
        return 0.9 * g


class Slow:
    """A 'network' with known costs: FWD s per forward, BWD s per backward."""
    shape = (2, 3)

    def __call__(self, x, sigma):
        time.sleep(FWD)
        return _SlowBackward.apply(x)


def test_forward_and_backward_are_timed_and_solver_work_is_not():
    """3 forwards (2 with a VJP) and 0.1 s of 'solver' sleep outside the network: fwd_s ~ 3 FWD,
    bwd_s ~ 2 BWD; sleep granularity and scheduling give a few ms of slack (bounds: >= the sleeps,
    < the sleeps + 40 ms; the outside sleep, 100 ms, would break the upper bounds if counted)."""
    den = TimingDenoiser(Slow())
    x = torch.ones(1, 2, 3)
    with torch.no_grad():
        den(x, 0.5)
    for _ in range(2):
        xr = x.clone().requires_grad_(True)
        out = den(xr, 0.5)
        time.sleep(0.05)                          # solver work between forward and backward
        torch.autograd.grad((out ** 2).sum(), xr)
    assert (den.nfe, den.vjp) == (3, 2)
    assert 3 * FWD <= den.fwd_s < 3 * FWD + 0.04, den.fwd_s
    assert 2 * BWD <= den.bwd_s < 2 * BWD + 0.04, den.bwd_s
    assert den.network_s == pytest.approx(den.fwd_s + den.bwd_s)


def test_values_and_gradients_unchanged():
    import priors

    torch.set_num_threads(1)
    prior = priors.build("edm_unet")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outs = []
    for den in (prior, TimingDenoiser(prior)):
        xr = x.clone().requires_grad_(True)
        out = den(xr, 1.3)
        (g,) = torch.autograd.grad(out.square().sum(), xr)
        outs.append((out.detach(), g))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_attributes_pass_through():
    den = TimingDenoiser(Slow())
    assert den.shape == (2, 3)
    assert not hasattr(den, "consistency")
