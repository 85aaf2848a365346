"""The latent parity problems and the pieces the latent records rely on (the records themselves run in
tests/test_parity.py, which iterates every record).

* the analytic latent problem's pixel statistics are right: exact posterior samples have spread ~ 1
  and a mean error of the size Monte-Carlo error predicts;
* LDM's DDIM grid (solvers/ldm_ddim.py) has latent-diffusion's timesteps c i + 1 and ends at t = 0;
* ReSample's batched AdamW is torch's AdamW run on each image separately;
* ReSample's switches for the papers' variants (``iters``, ``pixel_opt``) do what they say;
* every latent solver with official code has a parity record.
"""
from __future__ import annotations

import math
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from parity import problems, records, stats  # noqa: E402
from parity.problems_latent import pixel_posterior  # noqa: E402
from solvers.ldm_ddim import ldm_ddim_pairs, ldm_table  # noqa: E402
from solvers.resample import BatchAdamW  # noqa: E402


def test_latent_problem_statistics_on_exact_samples():
    p = problems.get("lgauss8_inpaint_half")
    assert p.kind == "latent_gaussian" and tuple(p.x_star.shape) == (1, 3, 8, 8)
    n = 400
    xs = p.prior.sample_posterior(p.y, p.op, p.sigma_y, n, torch.Generator().manual_seed(1))[0]
    m, cov, m0 = pixel_posterior(p.name)
    spread = stats.get("spread_px")(xs, p)
    err = stats.get("mean_err_px")(xs, p)
    # the sample mean's error has expected squared norm tr(C) / n
    expect = math.sqrt(float(cov.trace()) / n) / float((m0 - m).norm())
    assert abs(spread - 1.0) < 0.15, spread
    assert 0.5 * expect < err < 1.6 * expect, (err, expect)
    # prior samples are far worse on both
    zs = p.prior.sample_pixels(n, torch.Generator().manual_seed(2))
    assert stats.get("mean_err_px")(zs, p) > 0.8 and stats.get("spread_px")(zs, p) > 2.0


def test_ldm_ddim_grid():
    class P:                       # a prior with no VP table: LDM's linear schedule 0.0015 .. 0.0195
        pass
    table = ldm_table(P())
    assert table.numel() == 1000 and abs(float(table[0]) - math.sqrt(0.0015 / (1 - 0.0015))) < 1e-9
    pairs = ldm_ddim_pairs(100, P())
    assert len(pairs) == 100
    assert pairs[0][0] == float(table[991]) and pairs[0][1] == float(table[981])
    assert pairs[-1] == (float(table[1]), float(table[0]))
    full = ldm_ddim_pairs(1000, P())        # c = 1: PSLD's t = 0 .. 999, last step t = 0 -> t = 0
    assert full[0][0] == float(table[999]) and full[-1] == (float(table[0]), float(table[0]))


def test_batch_adamw_is_per_image_adamw():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, generator=g)
    y = torch.randn(3, 6, generator=g)
    x0 = torch.randn(3, 4, generator=g)
    opt = BatchAdamW(x0, lr=0.05, weight_decay=0.01)
    for it in range(30):
        with torch.enable_grad():
            v = opt.x.detach().requires_grad_(True)
            loss = ((v @ A.T - y) ** 2).mean(1)
            (gr,) = torch.autograd.grad(loss.sum(), v)
        opt.step(gr)
        if it == 9:
            opt.active[1] = False                  # image 1 stops after 10 iterations
    for b, iters in ((0, 30), (1, 10), (2, 30)):
        v = x0[b:b + 1].clone().requires_grad_(True)
        ref = torch.optim.AdamW([v], lr=0.05, weight_decay=0.01)
        for _ in range(iters):
            ref.zero_grad()
            torch.nn.functional.mse_loss(v @ A.T, y[b:b + 1]).backward()
            ref.step()
        assert torch.allclose(opt.x[b], v.detach()[0], atol=1e-6), b


def test_latent_solvers_have_records():
    covered = {r["solver"] for r in records.all_records()}
    assert {"psld", "resample", "latent_daps", "latent_mgps"} <= covered


def test_resample_switches(monkeypatch):
    """``iters`` caps every consistency optimisation at one count (the MGPS repository's
    max_optimization_iters); ``pixel_opt: false`` replaces the second third's pixel optimisation by
    the latent one.  With tol 0 and a window longer than the cap nothing stops early, so each
    optimisation runs exactly ``iters`` AdamW steps."""
    import solvers
    import solvers.resample as rs
    p = problems.get("lgauss8_inpaint_half")
    runs = []
    real = rs.BatchAdamW.step

    def counted(self, g):
        if getattr(self, "_n", None) is None:
            self._n = [0]
            runs.append(self._n)
        self._n[0] += 1
        real(self, g)

    monkeypatch.setattr(rs.BatchAdamW, "step", counted)
    calls = {"pixel": 0, "latent": 0}
    for kind in calls:
        orig = getattr(rs.ReSample, f"{kind}_optimisation")

        def wrap(self, *a, _orig=orig, _k=kind):
            calls[_k] += 1
            return _orig(self, *a)
        monkeypatch.setattr(rs.ReSample, f"{kind}_optimisation", wrap)
    y = p.y.expand(2, *p.y.shape[1:]).clone()
    common = dict(steps=50, iters=7, tol=0.0, window=1000)
    x = solvers.build("resample", **common).solve(y, p.op, p.prior, p.sigma_y, torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    # S = 50, split 16: consistency at k = 30, 20 (pixel: k >= 16) and k = 10 (latent), then the final latent one
    assert calls == {"pixel": 2, "latent": 2} and [n[0] for n in runs] == [7, 7, 7, 7], (calls, runs)
    calls.update(pixel=0, latent=0)
    runs.clear()
    solvers.build("resample", pixel_opt=False, **common).solve(y, p.op, p.prior, p.sigma_y,
                                                               torch.Generator().manual_seed(0))
    assert calls == {"pixel": 0, "latent": 4}, calls
