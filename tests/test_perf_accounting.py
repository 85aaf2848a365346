"""The performance benchmarks' bookkeeping (not their timings): overhead, operator time, run split."""
import time

import pytest
import torch

import operators
from benchmarks import ci_split, perf


def test_union_of_job_intervals():
    assert ci_split._union([(0, 2), (1, 3), (5, 6)]) == pytest.approx(4.0)
    assert ci_split._union([(0, 10), (2, 3)]) == pytest.approx(10.0)
    assert ci_split._union([]) == 0.0


def test_split_accounts_every_second(monkeypatch):
    monkeypatch.setattr(ci_split, "_import_cost", lambda: 1.0)
    t = 100.0
    recs = [dict(rule="measure", t_enter=t + 2, t_exit=t + 3, proc_start=None),
            dict(rule="solve", t_enter=t + 3, t_exit=t + 9, proc_start=None, load_s=0.5, solve_s=5.0),
            dict(rule="score", t_enter=t + 9.5, t_exit=t + 10, proc_start=t + 9.0)]   # own process
    r = ci_split.split(recs, wall=12.0, t0=t, cores=1)
    assert r["solve_s"] == 5.0 and r["load_s"] == 0.5
    assert r["other_jobs_s"] == pytest.approx(1.0 + 0.5 + 0.5)       # measure, solve rest, score body
    assert r["startup_s"] == pytest.approx(0.5 + 1.0)                 # score's process + imports
    # busy: [2, 9] + [9, 10] = 8 s; scheduling = 12 - 8 - 1 (imports) = 3 s
    assert r["scheduling_s"] == pytest.approx(3.0)
    assert r["overhead_pct"] == pytest.approx(100 * (3.0 + 1.5) / 12.0)


def test_timed_operator_counts_time_and_stays_transparent():
    op = operators.build("sr_block", (3, 8, 8), factor=2)
    top = perf.TimedOperator(op, "cpu")
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(top(x), op(x)) and torch.equal(top.adjoint(op(x)), op.adjoint(op(x)))
    assert top.provides == op.provides and top.y_shape == op.y_shape
    assert top.seconds > 0


def test_overhead_is_one_for_a_solver_that_only_calls_the_network(monkeypatch):
    """A 'solver' doing nothing but NFE denoiser calls: overhead = wall / (NFE t_fwd) ~ 1."""
    import solvers

    class OnlyNet(solvers.base.Solver):
        defaults = dict(steps=40)
        needs = frozenset({"forward"})

        @torch.no_grad()
        def solve(self, y, op, den, sigma_y, generator):
            x = torch.zeros((y.shape[0], *den.shape))
            for _ in range(self.p.steps):
                x = den(x, 0.5)
            return x

    class Slow:  # a denoiser with a known, dominant cost
        shape = (3, 8, 8)

        def __call__(self, x, sigma):
            time.sleep(0.004)
            return x * 0.9

        def to(self, dev):
            return self

    monkeypatch.setattr(perf, "build_prior", lambda name, dev: Slow())
    monkeypatch.setattr(perf.solvers, "get", lambda name: OnlyNet)
    monkeypatch.setattr(perf.solvers, "build", lambda name, **kw: OnlyNet(**kw))
    rows = perf.run("slow", ["only_net"], ["sr_x2"], [1], "paper", "cpu", log=lambda *_: None)
    (r,) = rows
    assert r["nfe"] == 40 and r["vjp"] == 0
    assert 0.9 < r["overhead"] < 1.3
    assert r["operator_share"] < 0.2


def test_every_pixel_space_solver_has_a_small_perf_budget():
    """`--budget small` (the perf rule's default) must not fall back to a solver's paper defaults
    (MAP-GA(PGDM)'s 20 x 50 + 100 would take minutes per batch on a CPU)."""
    import solvers
    assert set(solvers.names()) - perf.LATENT <= set(perf.SMALL), set(solvers.names()) - perf.LATENT - set(perf.SMALL)
