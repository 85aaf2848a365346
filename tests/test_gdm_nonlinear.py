"""gdm (Pi-GDM without an SVD) on operators known only by their forward map: the linearised
(Gauss-Newton) guidance and MGPS's JPEG surrogate (solvers/pgdm.py)."""
from __future__ import annotations

import math

import pytest
import torch

import operators
import solvers
from helpers import random_gaussian
from solvers.pgdm import (cg_guidance_vector, linearised_guidance_vector, mgps_surrogate_vector)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def gen(s):
    return torch.Generator().manual_seed(s)


class ForwardOnly:
    """A linear operator with its adjoint hidden (what gdm sees of a nonlinear one)."""
    provides = frozenset({"forward"})
    linear = False

    def __init__(self, op):
        self.op, self.x_shape, self.y_shape = op, op.x_shape, op.y_shape

    def __call__(self, x):
        return self.op(x)


def rel(a, b):
    return float((a - b).norm() / b.norm())


def test_linearised_guidance_equals_the_adjoint_path_for_a_linear_operator():
    """For a linear A the linearisation is exact (J_A = A), so the vector built from autograd alone
    equals the CG one built from A and A^T (relative 1e-4), noisy, high and low sigma, and noiseless
    for SR (noiseless deblurring is left out: A A^T is singular with eigenvalues down to ~1e-3, and
    float32 CG on it gives O(1) differences in the null-space-amplified part for either path, so
    there is nothing exact to compare)."""
    shape = (3, 8, 8)
    prior, g = random_gaussian(shape, seed=1)
    for name, params in [("sr_block", {"factor": 2}), ("deblur_uniform", {"size": 3})]:
        op = operators.build(name, shape, **params)
        x0 = prior.sample(2, g)
        y = op(prior.sample(2, g)) + 0.05 * torch.randn((2,) + op.y_shape, generator=g)
        for st, sy in [(5.0, 0.05), (0.05, 0.05)] + ([(0.5, 0.0)] if name == "sr_block" else []):
            yy = y if sy > 0 else op(prior.sample(2, g))      # noiseless: y in range(A), as CG needs
            a = cg_guidance_vector(op, x0, yy, st, sy, iters=200, tol=1e-9)
            b = linearised_guidance_vector(ForwardOnly(op), x0, yy, st, sy, iters=200, tol=1e-9)
            assert rel(b, a) < 1e-4, (name, st, sy)


def test_jpeg_jacobian_guidance_is_the_scaled_residual():
    """JPEG with straight-through rounding: dA/dx is the identity wherever the decoder does not clip
    (orthonormal DCT, quantise-dequantise with identity gradient, exact colour inverse), so
    J_A^T (J_A J_A^T + c I)^-1 r = r / (1 + c), c = sy^2 / r_t^2, r = y - A(x0): checked to 1e-5 on
    images whose decoded values stay inside [0, 255] (QF 2: large quantisation steps, so the
    Quality 10: at MGPS's quality 2 every 16x16 test image here
    decodes to the same flat grey (all coefficients, DC included, round to 0), so r would be 0.
    MGPS's surrogate is r itself."""
    shape = (3, 16, 16)
    op = operators.build("jpeg", shape, quality=10)
    g = gen(0)
    x0 = 0.4 * torch.tanh(torch.randn((2,) + shape, generator=g))
    y = op(0.4 * torch.tanh(torch.randn((2,) + shape, generator=g)))
    assert float(op(x0).abs().max()) < 0.99                     # nothing clipped: J_A = I exactly
    r = y - op(x0)
    assert float(r.abs().max()) > 0.1
    for st, sy in [(2.0, 0.05), (0.1, 0.05), (0.3, 0.0)]:
        c = sy ** 2 / (st ** 2 / (1 + st ** 2))
        v = linearised_guidance_vector(op, x0, y, st, sy)
        assert rel(v, r / (1 + c)) < 1e-5, (st, sy)
    assert torch.equal(mgps_surrogate_vector(op, x0, y, 0.1, 0.05), r)


def test_gdm_on_jpeg_fits_the_data():
    """gdm runs on jpeg (forward only; validation accepts it: needs = {forward}).  On a 3x16x16
    Gaussian prior (variances 3e-4 .. 0.3) with y = JPEG_10(x) + 0.05 n (quality 10: see above),
    50 EDM-grid steps, 8 images, the data residual ||A(x_hat) - y|| / sqrt(m): the linearised
    guidance brings it to the noise level (measured 0.050 = sy), half the unguided sampler's
    (weight 0, an unconditional prior sample: 0.103); asserted < 0.6 x unguided.  MGPS's surrogate
    with its step weight sqrt(1 + sigma_s^2) (its VP sqrt(abar_t) in VE units) is worse than no
    guidance here (measured 0.174), in line with MGPS App. D.2 ("For JPEG we found that it worsens
    the performance"); asserted only finite."""
    shape = (3, 16, 16)
    prior, g = random_gaussian(shape, seed=5)
    op = operators.build("jpeg", shape, quality=10)
    x = prior.sample(8, g)
    y = op(x) + 0.05 * torch.randn(x.shape, generator=g)
    assert solvers.get("gdm").needs == frozenset({"forward"})
    res = {}
    for key, params in [("jacobian", {}), ("mgps", {"nonlinear": "mgps"}), ("none", {"weight": 0.0})]:
        alg = solvers.build("gdm", steps=50, schedule="edm", **params)
        out = alg.solve(y, op, prior, 0.05, gen(1))
        assert torch.isfinite(out).all(), key
        res[key] = float(((op(out) - y).reshape(8, -1).norm(dim=1) / math.sqrt(y[0].numel())).mean())
    assert res["jacobian"] < 0.6 * res["none"], res
    w = solvers.build("gdm", nonlinear="mgps").weight_of(op)
    assert abs(w(3.0, 2.0) - math.sqrt(5.0)) < 1e-12
    assert solvers.build("gdm").weight_of(op) is None
