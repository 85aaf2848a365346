"""Refactors for speed leave outputs equal. MGPS's variational fit without torch.optim (solvers/mgps.py ``MGPS.fit``: the KL gradient by
hand, Adam's update written out) computes what the optimiser version computed: the reference below
is the previous implementation of the solve loop (torch.optim.Adam on the full ELBO through
autograd), kept verbatim as the oracle."""
from __future__ import annotations

import math

import pytest
import torch

import operators
import priors
import solvers
from solvers.base import noise


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def reference_solve(alg, y, op, den, sigma_y, generator):
    p = alg.p
    sy2 = max(float(sigma_y), p.sigma_y_floor) ** 2
    ts, sig = alg.grid(den)
    b = y.shape[0]
    shape = (b,) + tuple(den.shape)
    x = sig[ts[-1]] * noise(shape, generator)
    x0_prev = None
    for i in range(p.steps - 1, 1, -1):
        t, tp = ts[i], ts[i - 1]
        l = alg.midpoint(tp)
        st, sp, sl = sig[t], sig[tp], sig[l]
        with torch.no_grad():
            dt = den(x, st)
            if x0_prev is None:
                x0_prev = dt
            ratio = sl ** 2 / st ** 2
            m = dt + ratio * (x - dt)
            s2 = sl ** 2 * (st ** 2 - sl ** 2) / st ** 2
            mu0 = x0_prev + ratio * (x - x0_prev)
        mu = mu0.clone().requires_grad_(True)
        omega = torch.full_like(mu0, 0.5 * math.log(s2)).requires_grad_(True)
        opt = torch.optim.Adam([{"params": [mu], "lr": p.lr * math.sqrt(1 + sl ** 2)},
                                {"params": [omega], "lr": p.lr}])
        for _ in range(alg.n_grad_steps(i)):
            with torch.enable_grad():
                xs = mu + omega.exp() * noise(shape, generator)
                pred = den(xs, sl) if l > 1 else xs
                r = (y - op(pred)).reshape(b, -1)
                kl = (0.5 * math.log(s2) - omega
                      + ((2 * omega).exp() + (mu - m) ** 2) / (2 * s2) - 0.5).sum()
                loss = kl + (r ** 2).sum() / (2 * sy2)
                opt.zero_grad()
                loss.backward()
            opt.step()
        with torch.no_grad():
            xl = mu + omega.exp() * noise(shape, generator)
            a = (sp ** 2 - sl ** 2) / (st ** 2 - sl ** 2)
            var = (sp ** 2 - sl ** 2) * (st ** 2 - sp ** 2) / (st ** 2 - sl ** 2)
            x = xl + a * (x - xl) + math.sqrt(max(var, 0.0)) * noise(shape, generator)
            x0_prev = den(xl, sl)
        x = x.detach()
    with torch.no_grad():
        return den(x, sig[ts[1]])


def gaussian_problem(op_name, **op_params):
    """A 3x4x4 Gaussian prior (random covariance, variances 10^-1.5 .. 1), 3 images, sy = 0.05."""
    g = torch.Generator().manual_seed(3)
    shape = (3, 4, 4)
    n = math.prod(shape)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    cov = (q * torch.logspace(-1.5, 0, n, dtype=torch.float64)) @ q.T
    prior = priors.build("gaussian", mean=0.1 * torch.randn(n, generator=g), cov=cov, shape=shape)
    op = operators.build(op_name, shape, **op_params)
    y = op(prior.sample(3, g).reshape(3, *shape)) + 0.05 * torch.randn((3,) + tuple(op.y_shape), generator=g)
    return prior, op, y


@pytest.mark.parametrize("task", [("inpaint_half", {}), ("sr_block", {"factor": 2})])
def test_mgps_fit_equals_the_optimiser_version_on_the_gaussian_prior(task):
    """Same seeds, same draws in the same order: the outputs agree to float32 rounding (atol 1e-5
    on values of order 1; the two differ only in the order of the gradient's additions) and the
    NFE / VJP counts are equal.  The step rule makes K = 2, 3, 4 and 5 occur."""
    prior, op, y = gaussian_problem(task[0], **task[1])
    params = dict(steps=30, grad_steps=3, grad_steps_first=5, first_window=5, grad_steps_last=2,
                  last_window=5, grad_steps_every=4, every=10, warm_threshold=2000)  # the reference has no warm start
    alg = solvers.build("mgps", **params)
    da, db = solvers.CountingDenoiser(prior), solvers.CountingDenoiser(prior)
    a = alg.solve(y, op, da, 0.05, torch.Generator().manual_seed(1))
    b = reference_solve(alg, y, op, db, 0.05, torch.Generator().manual_seed(1))
    assert torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert (da.nfe, da.vjp) == (db.nfe, db.vjp)


def test_mgps_fit_step_is_adam_on_the_elbo():
    """One call of ``fit`` with K = 3 on a tiny problem equals torch.optim.Adam run on the ELBO with
    autograd (both sides in float64: agreement to 1e-12)."""
    prior, op, y = gaussian_problem("inpaint_half")
    alg = solvers.build("mgps")
    shape = (3, 3, 4, 4)
    den = lambda x, s: prior(x, s)  # noqa: E731
    g = torch.Generator().manual_seed(5)
    mu0 = torch.randn(shape, generator=g, dtype=torch.float64)
    m = torch.randn(shape, generator=g, dtype=torch.float64)
    s2, sl, sy2 = 0.3, 0.7, 0.05 ** 2
    y64 = y.double()
    mu, om = alg.fit(mu0, torch.full_like(mu0, 0.5 * math.log(s2)), m, s2, sl, 1, y64, op, den, sy2,
                     shape, torch.Generator().manual_seed(9), 3)
    gen = torch.Generator().manual_seed(9)
    mr = mu0.clone().requires_grad_(True)
    wr = torch.full_like(mu0, 0.5 * math.log(s2)).requires_grad_(True)
    opt = torch.optim.Adam([{"params": [mr], "lr": alg.p.lr * math.sqrt(1 + sl ** 2)},
                            {"params": [wr], "lr": alg.p.lr}])
    for _ in range(3):
        xs = mr + wr.exp() * torch.randn(shape, generator=gen).double()
        r = (y64 - op(xs)).reshape(3, -1)
        loss = (0.5 * math.log(s2) - wr + ((2 * wr).exp() + (mr - m) ** 2) / (2 * s2) - 0.5).sum() \
            + (r ** 2).sum() / (2 * sy2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(mu, mr.detach(), atol=1e-12, rtol=0)
    assert torch.allclose(om, wr.detach(), atol=1e-12, rtol=0)


def test_mgps_warm_step_is_adam_on_its_objective():
    """MGPS's warm-start fit (``_warm_x1``: a Gaussian on x_1 given x_l, gradients by hand,
    ElementwiseAdam) equals torch.optim.Adam run with autograd on the same objective
    |y - A x1|^2 / (2 sy2) - sum(omega) + sum(((xl - mu)^2 + e^2) / (2 dv)) - <x1, score(x1)>
    (score held fixed), same noise draws, float64: agreement to 1e-12."""
    prior, op, y = gaussian_problem("inpaint_half")
    alg = solvers.build("mgps")
    shape = (3, 3, 4, 4)
    den = lambda x, s: prior(x.float(), s).double()  # noqa: E731
    g = torch.Generator().manual_seed(6)
    xl = torch.randn(shape, generator=g, dtype=torch.float64)
    sl, s1, sy2, k = 0.9, 0.2, 0.05 ** 2, 4
    y64 = y.double()
    out = alg._warm_x1(xl, sl, s1, y64, op, sy2, k, den, torch.Generator().manual_seed(11))
    gen = torch.Generator().manual_seed(11)
    dl = den(xl, sl)
    mu = (dl + (s1 ** 2 / sl ** 2) * (xl - dl)).requires_grad_(True)
    om = torch.full_like(xl, 0.5 * math.log(s1 ** 2 * (sl ** 2 - s1 ** 2) / sl ** 2)).requires_grad_(True)
    dv = sl ** 2 - s1 ** 2
    opt = torch.optim.Adam([{"params": [mu], "lr": alg.p.lr * math.sqrt(1 + s1 ** 2)},
                            {"params": [om], "lr": alg.p.lr}])
    for _ in range(k):
        x1 = mu + om.exp() * noise(shape, gen).double()
        with torch.no_grad():
            score = (den(x1, s1) - x1) / s1 ** 2
        r = (y64 - op(x1)).reshape(3, -1)
        loss = ((r ** 2).sum() / (2 * sy2) - om.sum() + (((xl - mu) ** 2 + (2 * om).exp()) / (2 * dv)).sum()
                - (x1 * score).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        ref = mu + om.exp() * noise(shape, gen).double()
    assert torch.allclose(out, ref, atol=1e-12, rtol=0), (out - ref).abs().max()


def reference_reddiff(alg, y, op, den, generator):
    """The previous RED-diff loop (torch.optim.Adam on mu), kept verbatim as the oracle."""
    from dipbench.schedule import grid

    p = alg.p
    sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
    shape = (y.shape[0],) + tuple(den.shape)
    mu0 = op.pinv(y).reshape(shape) if (p.init == "pinv" and "svd" in op.provides) else torch.zeros(shape)
    mu = mu0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mu], lr=p.lr, betas=tuple(p.betas))
    b = y.shape[0]
    for st in sigmas:
        eps = noise(shape, generator)
        with torch.no_grad():
            xt = mu.detach() + st * eps
            eps_hat = (xt - den(xt, st)) / st
        with torch.enable_grad():
            r = (y - op(mu)).reshape(b, -1)
            obs = 0.5 * (r ** 2).mean(1).sum()
            reg = ((eps_hat - eps) * mu).reshape(b, -1).mean(1).sum()
            loss = p.obs_weight * obs + p.lam * st * reg
            opt.zero_grad()
            loss.backward()
        opt.step()
    return mu.detach()


@pytest.mark.parametrize("task", [("inpaint_half", {}), ("sr_block", {"factor": 2})])
def test_reddiff_adam_written_out_equals_torch_optim(task):
    """RED-diff with solvers/adam.py's ElementwiseAdam gives the torch.optim.Adam version's output
    to float32 rounding (atol 1e-6) on the Gaussian prior, same seeds, 30 steps."""
    prior, op, y = gaussian_problem(task[0], **task[1])
    alg = solvers.build("reddiff", steps=30, output="mu")   # the reference returns mu
    a = alg.solve(y, op, prior, 0.05, torch.Generator().manual_seed(2))
    b = reference_reddiff(alg, y, op, prior, torch.Generator().manual_seed(2))
    assert torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
