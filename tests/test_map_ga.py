"""MAP-GA with the consistency model (Algorithm 2: ``map_ga``, ``map_ga_np``; Algorithm 3:
``map_ga_pgdm``, ``map_ga_d_pgdm``), the exact consistency map of the Gaussian prior, consistency
counting, oracle initialisation, and the config plumbing for a dataset's consistency model.

What the math says (solvers/map_ga.py) and what is asserted:
* The ascent's fixed point with the prior term is the "eps-MAP": the MAP with noise variance
  sy^2 + eps^2 and prior N(mu, S + eps^2 I), computable exactly; it is within O(eps^2 / sy^2) of
  the exact MAP.  Where the data determine every direction (a full-rank operator) the default
  (N, K) = (20, 50) reaches it to float32 precision at the last level, from noise or from the
  oracle start; on operators with a null space K steps cannot reach it there (lambda-curvature
  sy^2 / (lam + tau^2) along prior-only directions), which is measured, not hidden.
* Without the prior term the ascent is least squares in z: x* = x0 + C (H C)^+ (y - H x0).
* Algorithm 3 on the unit-covariance prior: the MAP-GA(NP) chain with the exact consistency map
  leaves unobserved coordinates exact prior samples and PGDM's Gaussian approximation is exact
  there, so their law is N(mu, 1) up to O(sy^2); the observed coordinates sit at the data.
"""
from __future__ import annotations

import math

import pytest
import torch

import operators
import priors
import solvers
from helpers import random_gaussian


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def gen(s):
    return torch.Generator().manual_seed(s)


def rel(a, b):
    b = b.reshape(b.shape[0], -1).double()
    return (a.reshape(a.shape[0], -1).double() - b).norm(dim=1) / b.norm(dim=1)


def eps_map(prior, y, op, sy):
    """MAP of y = H x + N(0, sy^2 + eps^2) under N(mu, S + eps^2 I): MAP-GA's exact fixed point."""
    e2 = prior.consistency_sigma_min ** 2
    pe = priors.build("gaussian", mean=prior.mu64.reshape(prior.shape),
                      cov=prior.cov() + e2 * torch.eye(prior.n, dtype=torch.float64))
    return pe.map_estimate(y, op, math.sqrt(sy ** 2 + e2))


def exact_map(prior, y, op, sy):
    return prior.map_estimate(y, op, sy) if sy > 0 else prior.posterior(y, op, 0.0)["mean"].float()


def linear_part(f, n, s):
    """The matrix of the affine map v -> f(v, s) - f(0, s) on R^n (float64 columns)."""
    eye = torch.eye(n)
    return (f(eye, s) - f(torch.zeros(1, n), s)).double().T


@pytest.fixture(scope="module")
def full_rank():
    """48-d Gaussian prior (eigenvalues 3e-4 .. 0.3), square A with singular values 1 .. 0.5."""
    n = 48
    prior, g = random_gaussian((n,), seed=0)
    x = prior.sample(4, g)
    q1, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    A = (q1 * torch.linspace(1.0, 0.5, n, dtype=torch.float64)) @ q2.T
    return prior, operators.build("matrix", (n,), matrix=A.float()), x, A


# --- the exact consistency map ---------------------------------------------------------------
def test_gaussian_consistency_is_the_pf_ode_end_point():
    """f(x, sigma) equals a fine numerical integration of the PF-ODE dx/dsigma = (x - D)/sigma from
    sigma = 2 to eps (4000 Heun steps in float64 on a log grid: error ~1e-9; asserted 1e-6), maps
    N(mu, S + sigma^2 I) to N(mu, S + eps^2 I) exactly (L (S + sigma^2) L^T = S + eps^2, 1e-5 in
    float32), and is the identity at sigma <= eps."""
    prior, g = random_gaussian((12,), seed=3)
    eps = prior.consistency_sigma_min
    x = prior.sample(3, g) + 2.0 * torch.randn(3, 12, generator=g)
    f = prior.consistency(x, 2.0).double()
    p64 = priors.build("gaussian", mean=prior.mu64, cov=prior.cov())
    p64.mu, p64.lam, p64.Q = p64.mu64, p64.lam64, p64.Q64           # float64 denoiser
    z = x.double()
    sig = torch.logspace(math.log10(2.0), math.log10(eps), 4001, dtype=torch.float64).tolist()
    for s, t in zip(sig[:-1], sig[1:]):
        d1 = (z - p64(z, s)) / s
        zp = z + (t - s) * d1
        z = z + (t - s) * 0.5 * (d1 + (zp - p64(zp, t)) / t)
    assert float(rel(f, z).max()) < 1e-6
    L = linear_part(prior.consistency, 12, 2.0)
    S = prior.cov()
    want = S + eps ** 2 * torch.eye(12, dtype=torch.float64)
    got = L @ (S + 4.0 * torch.eye(12, dtype=torch.float64)) @ L.T
    assert float((got - want).abs().max() / want.abs().max()) < 1e-5
    assert torch.allclose(prior.consistency(x, eps), x) and torch.allclose(prior.consistency(x, 1e-4), x)


def test_consistency_calls_are_counted():
    """CountingDenoiser: consistency calls count in nfe/vjp and in cm_nfe/cm_vjp; a prior without a
    consistency map shows none (hasattr is False through the wrapper)."""
    prior, g = random_gaussian((6,), seed=1)
    den = solvers.CountingDenoiser(prior)
    x = torch.randn(2, 6, generator=g).requires_grad_(True)
    out = den.consistency(x, 0.5)
    torch.autograd.grad(out.sum(), x)
    den(x.detach(), 0.5)
    assert (den.nfe, den.vjp, den.cm_nfe, den.cm_vjp) == (2, 1, 1, 1)
    gmm = priors.build("gmm", weights=[1.0], means=torch.zeros(1, 2), covs=torch.eye(2))
    assert not hasattr(solvers.CountingDenoiser(gmm), "consistency")
    with pytest.raises(TypeError, match="consistency"):
        solvers.build("map_ga").solve(torch.zeros(1, 1), operators.build("matrix", (2,), matrix=torch.ones(1, 2)),
                                      gmm, 0.1, gen(0))


# --- Algorithm 2 -------------------------------------------------------------------------------
@pytest.mark.parametrize("sy", [0.0, 0.01])
def test_map_ga_reaches_the_exact_map_where_the_data_determine_it(full_rank, sy):
    """Full-rank A (singular values 1 .. 0.5), defaults (N, K) = (20, 50).  At the last level
    (tau = eps, C = I) the ascent's lambda-curvature is s_j^2 + (sy^2 + eps^2)/(lam + eps^2) in
    (0.25, 2) in every direction, so 50 steps contract the error by < 0.75^50: the output is the
    eps-MAP to float32 precision (measured <= 7e-6, asserted 1e-4) and the exact MAP within the eps
    bias (measured <= 9e-4, asserted 2e-3), from noise and from the oracle start x0 + 0.5 eta.
    Counts: N (2K + 1) NFEs, of which N (K + 1) consistency calls; N K VJPs, all through f."""
    prior, op, x, _ = full_rank
    y = op(x) + sy * torch.randn((4,) + op.y_shape, generator=gen(1))
    xe, xm = eps_map(prior, y, op, sy), exact_map(prior, y, op, sy)
    for name, init in [("map_ga", None), ("map_ga", (x + 0.5 * torch.randn(x.shape, generator=gen(5)), 0.5)),
                       ("map_ga_d", None)]:
        den = solvers.CountingDenoiser(prior)
        xh = solvers.build(name).solve(y, op, den, sy, gen(0), init=init)
        assert float(rel(xh, xe).max()) < 1e-4, (name, init is None, rel(xh, xe))
        assert float(rel(xh, xm).max()) < 2e-3, (name, init is None, rel(xh, xm))
        cm = 20 * 51 if name == "map_ga" else 0
        assert (den.nfe, den.vjp, den.cm_nfe, den.cm_vjp) == (20 * 101, 1000, cm, 1000 if cm else 0)


@pytest.mark.parametrize("task", ["inpaint_half", "sr_x2"])
def test_map_ga_ascent_fixed_point_is_the_eps_map(task):
    """Operators with a null space, sy = 0.05, one level tau = 0.05 and many steps: the ascent
    converges to its fixed point, the eps-MAP (lambda-curvature between sy^2 / (lam_max + tau^2)
    = 0.045 and 2 - 0.05, so 400 steps leave < exp(-18)); asserted 2e-3 relative (float32,
    condition ~1e3; measured ~4e-4).  Both the consistency map and the denoiser variant."""
    shape = (3, 8, 8)
    prior, g = random_gaussian(shape, lo=3e-4, hi=0.05, seed=2)
    x = prior.sample(2, g)
    op = operators.build(*(("inpaint_half", shape) if task == "inpaint_half" else ("sr_block", shape)),
                         **({} if task == "inpaint_half" else {"factor": 2}))
    y = op(x) + 0.05 * torch.randn((2,) + op.y_shape, generator=gen(1))
    xe = eps_map(prior, y, op, 0.05)
    for name in ("map_ga", "map_ga_d"):
        xh = solvers.build(name, steps=1, iters=400, sigma_max=0.05).solve(y, op, prior, 0.05, gen(0))
        assert float(rel(xh, xe).max()) < 2e-3, (name, rel(xh, xe))


def test_map_ga_null_space_is_not_converged_at_the_default_budget():
    """The other side, measured and bounded rather than hidden: half inpainting, sy = 0.01,
    (20, 50) on a 3x8x8 prior with variances up to 0.3.  The observed half is the eps-MAP's to
    within 2 sy (relative 0.02; measured 0.0013), but in the masked half the prior-only directions
    have lambda-curvature <= 1e-4 / 0.3 per step, so the output stays 0.1-0.2 from the MAP
    (measured 0.11/0.14/0.13/0.18 with the consistency map, 0.08-0.10 with the denoiser, whose J
    shrinks those directions towards mu at every level); asserted < 0.25."""
    prior, op, _, y, xe = _inpaint_problem()
    for name in ("map_ga", "map_ga_d"):
        xh = _run(name, prior, op, y, 0.01)
        assert float(rel(op(xh), op(xe)).max()) < 0.02, name
        assert float(rel(xh, xe).max()) < 0.25, (name, rel(xh, xe))


_PROBS: dict = {}


def _inpaint_problem():
    """3x8x8 prior (variances 3e-4 .. 0.3), half inpainting, sy = 0.01, 4 images (cached)."""
    if not _PROBS:
        shape = (3, 8, 8)
        prior, g = random_gaussian(shape, seed=0)
        x = prior.sample(4, g)
        op = operators.build("inpaint_half", shape)
        y = op(x) + 0.01 * torch.randn((4,) + op.y_shape, generator=gen(1))
        _PROBS["p"] = (prior, op, x, y, eps_map(prior, y, op, 0.01))
    return _PROBS["p"]


def test_map_ga_np_is_least_squares(full_rank):
    """NP = least squares in z.  (1) Full-rank A, noiseless: the unique solution A^-1 y, which is
    the exact MAP (measured 2e-7, asserted 1e-5); noisy: A^-1 y, the maximum-likelihood solution,
    not the MAP (asserted 1e-4 to A^-1 y).  (2) Rank-deficient A (32 x 48), one level tau = 0.05
    from x_tau, many steps: x* = x0 + C (A C)^+ (y - A x0), x0 = f(x_tau, tau), C = df/dx
    (asserted 1e-4; data curvature >= 0.027 per step, 1500 steps)."""
    prior, op, x, A = full_rank
    for sy in (0.0, 0.01):
        y = op(x) + sy * torch.randn((4,) + op.y_shape, generator=gen(1))
        ls = torch.linalg.solve(A, y.double().T).T
        xh = solvers.build("map_ga_np").solve(y, op, prior, sy, gen(0))
        assert float(rel(xh, ls).max()) < (1e-5 if sy == 0 else 1e-4), (sy, rel(xh, ls))
    Ar = A[:32]
    op2 = operators.build("matrix", (48,), matrix=Ar.float())
    y = op2(x)
    xt = x + 0.05 * torch.randn(x.shape, generator=gen(7))
    xh = solvers.build("map_ga_np", steps=1, iters=1500).solve(y, op2, prior, 0.0, gen(0), init=(xt, 0.05))
    C = linear_part(prior.consistency, 48, 0.05)
    x0 = prior.consistency(xt, 0.05).double()
    want = x0 + ((C @ torch.linalg.pinv(Ar @ C)) @ (y.double() - x0 @ Ar.T).T).T
    assert float(rel(xh, want).max()) < 1e-4, rel(xh, want)


def test_oracle_init_at_the_top_level_is_the_plain_run():
    """init = (sigma_max * n, sigma_max) with n the generator's first draw reproduces the run without
    init exactly (same grid, same random stream): the init path changes nothing but the start.  Also
    for pgdm/gdm on an EDM grid, and a bad init shape is an error naming the expected shape."""
    prior, g = random_gaussian((3, 4, 4), seed=4)
    op = operators.build("inpaint_half", (3, 4, 4))
    y = op(prior.sample(2, g))
    for name, params in [("map_ga", dict(steps=4, iters=3)), ("map_ga_d_np", dict(steps=4, iters=3)),
                         ("pgdm", dict(steps=6, schedule="edm")), ("gdm", dict(steps=6, schedule="edm")),
                         ("map_ga_pgdm", dict(steps=3, iters=2, pgdm_steps=3))]:
        alg = solvers.build(name, **params)
        assert type(alg).accepts_init is True
        a = alg.solve(y, op, prior, 0.05, gen(9))
        g9 = gen(9)
        x1 = 80.0 * torch.randn((2, 3, 4, 4), generator=g9)      # the draw the plain run starts from
        b = alg.solve(y, op, prior, 0.05, g9, init=(x1, 80.0))
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="shape"):
        solvers.build("map_ga").solve(y, op, prior, 0.05, gen(0), init=(torch.zeros(1, 3, 4, 4), 0.5))


def test_oracle_init_brings_the_output_closer_to_the_map():
    """Half inpainting, sy = 0.01, 3x8x8, defaults (the case above, where the masked half is not
    converged from noise): started from x0 + 0.5 eta at tau_1 = 0.5 (MAP-GA Table 2's oracle start)
    the output is much closer to the eps-MAP (measured mean relative distance 0.034 with the
    consistency map and 0.032 with the denoiser, against 0.141 and 0.092 from noise): the N levels
    all lie below 0.5, where the ascent moves the masked half, and the start carries no prior-sample
    error there.  Asserted: from the oracle start below half the distance from noise, for both."""
    prior, op, x, y, xe = _inpaint_problem()
    init = (x + 0.5 * torch.randn(x.shape, generator=gen(5)), 0.5)
    for name in ("map_ga", "map_ga_d"):
        a = _run(name, prior, op, y, 0.01)
        b = solvers.build(name).solve(y, op, prior, 0.01, gen(0), init=init)
        assert float(rel(b, xe).mean()) < 0.5 * float(rel(a, xe).mean()), (name, rel(b, xe), rel(a, xe))


_RUNS: dict = {}


def _run(name, prior, op, y, sy):
    """Default-budget runs shared by tests (cached per problem)."""
    key = (name, id(prior), id(op), sy)
    if key not in _RUNS:
        _RUNS[key] = solvers.build(name).solve(y, op, prior, sy, gen(0))
    return _RUNS[key]


# --- Algorithm 3 -------------------------------------------------------------------------------
def test_map_ga_pgdm_on_the_unit_gaussian():
    """Prior N(mu, I) on 3x4x4, half inpainting, sy = 0.05, 400 samples, (N, K) = (10, 20), m = 20.
    Derived: the prior factorises, the masked coordinates never see the data, the exact consistency
    map carries exact N(mu, 1 + tau^2) samples down the renoising chain, and PGDM's approximation
    p(x0 | x_t) = N(D, r_t^2) is exact for unit covariance, so masked coordinates are N(mu, 1) up to
    O(sy^2): asserted mean within 4 standard errors of mu and variance within 10 % of 1 (measured
    1.008 on 3x8x8).  Observed coordinates: MAP-GA(NP) fits y, PGDM keeps them at the data: mean
    within 0.5 sy of the posterior mean, variance below sy^2 (measured 0.13 sy^2; the exact
    posterior has ~sy^2: PGDM under-disperses there).  The denoiser variant shrinks the masked half
    (J < 1 at every level): its variance is asserted below 0.8 (measured 0.41).  pgdm_steps = 0
    is map_ga_np exactly."""
    shape, n, B, sy = (3, 4, 4), 48, 400, 0.05
    g = gen(0)
    mu = 0.3 * torch.randn(shape, generator=g)
    prior = priors.build("gaussian", mean=mu, cov=torch.eye(n, dtype=torch.float64))
    op = operators.build("inpaint_half", shape)
    y = op(prior.sample(1, g)) + sy * torch.randn((1,) + op.y_shape, generator=g)
    pm = prior.posterior(y, op, sy)["mean"].reshape(-1)
    mask = (op.adjoint(torch.ones((1,) + op.y_shape)) > 0.5).reshape(-1)
    yb = y.expand(B, *y.shape[1:]).clone()
    params = dict(steps=10, iters=20)
    out = solvers.build("map_ga_pgdm", **params).solve(yb, op, prior, sy, gen(2)).double().reshape(B, -1)
    mu_f = prior.mu64
    se = 1.0 / math.sqrt(B)
    assert float((out[:, ~mask].mean(0) - mu_f[~mask]).abs().max()) < 4 * se
    assert abs(float(out[:, ~mask].var(0).mean()) - 1.0) < 0.1
    assert float((out[:, mask].mean(0) - pm[mask]).abs().max()) < 0.5 * sy
    assert float(out[:, mask].var(0).mean()) < sy ** 2
    outd = solvers.build("map_ga_d_pgdm", **params).solve(yb, op, prior, sy, gen(2)).double().reshape(B, -1)
    assert float(outd[:, ~mask].var(0).mean()) < 0.8
    a = solvers.build("map_ga_pgdm", pgdm_steps=0, **params).solve(y, op, prior, sy, gen(3))
    b = solvers.build("map_ga_np", **params).solve(y, op, prior, sy, gen(3))
    assert torch.equal(a, b)


def test_map_ga_pgdm_counts_and_defaults():
    """Alg. 3's defaults are the paper's (no prior term, m = 20 PGDM steps); counts: N (K + 1) NFE
    and N K VJP in the MAP-GA part (consistency calls for map_ga_pgdm), + m NFE and m VJP."""
    for name in ("map_ga_pgdm", "map_ga_d_pgdm"):
        d = solvers.get(name).defaults
        assert d["prior_term"] is False and d["pgdm_steps"] == 20
    prior, g = random_gaussian((3, 4, 4), seed=4)
    op = operators.build("sr_block", (3, 4, 4), factor=2)
    y = op(prior.sample(1, g)) + 0.1 * torch.randn((1,) + op.y_shape, generator=g)
    den = solvers.CountingDenoiser(prior)
    solvers.build("map_ga_pgdm", steps=5, iters=4).solve(y, op, den, 0.1, gen(0))
    assert (den.nfe, den.vjp, den.cm_nfe, den.cm_vjp) == (5 * 5 + 20, 5 * 4 + 20, 5 * 5, 5 * 4)


# --- config ------------------------------------------------------------------------------------
def _cfg(solver, consistency=None, prior="gaussian_fit"):
    d = {"images": "skimage32", "n_images": 2, "prior": {"name": prior}}
    if consistency is not None:
        d["consistency"] = consistency
    return {"datasets": {"d": d}, "tasks": {"t": {"operator": "inpaint_half", "sigma_y": 0.0}},
            "solvers": {solver: {}}, "seeds": [0]}


def test_config_consistency_check_runs_before_any_job():
    """A solver that needs a consistency map on a dataset whose prior has none fails validation
    naming the solver, the dataset and `datasets.<d>.consistency`; the exact Gaussian priors carry
    their own map (no entry needed); a dataset entry with one passes and its key enters the dataset
    entry (and so the run's config hash) only when given."""
    from dipbench import config as C

    C.check_names(_cfg("map_ga"))                                        # gaussian_fit: exact map
    C.check_names(_cfg("map_ga_d"))
    with pytest.raises(C.ConfigError, match=r"solvers\.map_ga x datasets\.d.*datasets\.d\.consistency"):
        C.check_names(_cfg("map_ga", prior="edm_unet"))
    C.check_names(_cfg("map_ga_pgdm", consistency={"name": "gaussian_fit"}, prior="edm_unet"))
    with pytest.raises(C.ConfigError, match=r"datasets\.d\.consistency\.name"):
        C.check_names(_cfg("map_ga", consistency={"name": "nope"}, prior="edm_unet"))
    assert "consistency" not in C.dataset_entry(_cfg("map_ga"), "d")
    assert C.dataset_entry(_cfg("map_ga", consistency={"name": "x"}), "d")["consistency"] == {"name": "x", "params": {}}


def test_pipeline_attaches_the_consistency_model():
    """build_prior returns the denoiser with the consistency model's map attached: calls go to the
    denoiser, `consistency` to the model, attributes (shape, exact helpers) to the denoiser."""
    from dipbench.pipeline import build_prior

    mean = [0.1, -0.2]
    cfg = {"datasets": {"d": {"prior": {"name": "gmm", "params": {"weights": [1.0], "means": [mean],
                                                                    "covs": [[[1.0, 0.0], [0.0, 1.0]]]}},
                              "consistency": {"name": "gaussian", "params": {"mean": mean,
                                                                              "cov": [[1.0, 0.0], [0.0, 1.0]]}}}}}
    p = build_prior(cfg, "d")
    x = torch.randn(3, 2, generator=gen(0))
    gmm = priors.build("gmm", weights=[1.0], means=[mean], covs=[[[1.0, 0.0], [0.0, 1.0]]])
    gauss = priors.build("gaussian", mean=mean, cov=[[1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(p(x, 0.7), gmm(x, 0.7))
    assert torch.allclose(p.consistency(x, 0.7), gauss.consistency(x, 0.7))
    assert p.consistency_sigma_min == gauss.consistency_sigma_min and p.shape == (2,)
    assert hasattr(p, "map_estimate") and p.to("cpu") is p


def test_init_grids():
    """grid_from: an EDM grid is rebuilt from the init level down with the same number of levels;
    the VP-uniform grid keeps its own levels below the init level; a level outside the prior's
    range is an error naming the range."""
    from dipbench.schedule import edm_sigmas, grid
    from solvers.pgdm import grid_from

    prior, _ = random_gaussian((4,), seed=0)
    g = grid_from("edm", 7, prior, 0.002, 80.0, 7.0, 0.5)
    assert torch.allclose(torch.tensor(g, dtype=torch.float64), edm_sigmas(7, 0.002, 0.5, 7.0))
    v = grid_from("vp_uniform", 100, prior, 0.002, 80.0, 7.0, 0.5)
    base = grid("vp_uniform", 100, prior).tolist()
    assert v[0] == 0.5 and v[1:] == [s for s in base if s < 0.5] and len(v) < len(base)
    # analytic priors cover every sigma; a network prior has a finite range (EDM: up to 80)
    class Bounded:
        sigma_min, sigma_max = 0.002, 80.0

        def __getattr__(self, name):
            return getattr(prior, name)

    with pytest.raises(ValueError, match="range"):
        grid_from("edm", 7, Bounded(), 0.002, 80.0, 7.0, 1e3)
    with pytest.raises(ValueError, match="range"):
        grid_from("edm", 7, prior, 0.002, 80.0, 7.0, 0.0)
