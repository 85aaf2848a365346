"""Solver-entry features end to end on the embedded data (Gaussian prior fitted on the train split,
2 images, a few DDRM steps): `tasks`, `sigma_y` (told vs measured), `per_task`, `project`,
`best_of` (oracle), `oracle_init` (oracle), each checked against what it must do exactly, and
each one's validation naming the bad key before any job.

The pipeline steps (measure -> solve -> score -> aggregate) run in-process on a temporary results
root; one test runs the same config through Snakemake (the rules' side: the measure rule's oracle
sigmas and the run list that honours `tasks:`).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import solvers
from dipbench import config as C
from dipbench import pipeline as P
from dipbench.config import ConfigError, validate
from dipbench.paths import ROOT
from dipbench.seeding import generator

BASE = dict(
    results="results/unused", device="cpu", batch_size=2, seeds=[0],
    datasets={"g": {"images": "skimage32", "n_images": 2, "prior": {"name": "gaussian_fit"}}},
    tasks={"inpaint_half": {"operator": "inpaint_half", "sigma_y": 0.05},
           "deblur": {"operator": "deblur_uniform", "params": {"size": 5, "threshold": 0.2}, "sigma_y": 0.05}},
    solvers={},
    metrics=["psnr"],
)


def cfg_with(**solvers_):
    c = copy.deepcopy(BASE)
    c["solvers"] = {**c["solvers"], **solvers_}
    return c


class _InitEcho(solvers.Solver):
    """Test-only stand-in: returns the initialisation it is handed (so the test sees exactly what
    the pipeline passes); registered only inside these tests."""
    defaults = dict(steps=1)
    needs = frozenset({"forward"})
    accepts_init = True

    def solve(self, y, operator, denoiser, sigma_y, generator, init=None):
        assert init is not None, "the pipeline must pass init=(x_sigma, sigma) when oracle_init is set"
        x, sigma = init
        self.seen_sigma = sigma
        return x.clone()


@pytest.fixture
def init_echo(monkeypatch):
    monkeypatch.setitem(solvers.SOLVERS._items, "test_init_echo", _InitEcho)
    _InitEcho.registry_name = "test_init_echo"
    return _InitEcho


def run_all(cfg, res):
    """measure, solve, score every planned run in-process; returns (leaderboard, {run: run.json})."""
    validate(cfg)
    done, runs = set(), {}
    for d, t, s, k in C.planned_runs(cfg):
        meas = res / "measurements" / d / t / f"seed{k}"
        if (d, t, k) not in done:
            P.measure(cfg, d, t, k, meas)
            done.add((d, t, k))
        rd = res / "runs" / d / t / s / f"seed{k}"
        runs[d, t, s, k] = P.solve_or_record(cfg, d, t, s, k, meas, rd, log=lambda *_: None)
        P.score(cfg, meas, rd)
    lb = P.aggregate(cfg, [res / "runs" / d / t / s / f"seed{k}" for d, t, s, k in C.planned_runs(cfg)],
                     res / "leaderboard.csv", log=lambda *_: None)
    return lb, runs


def _meas(res, task):
    return P.load_measurement(res / "measurements" / "g" / task / "seed0")


def _recon(res, task, solver):
    return torch.from_numpy(np.load(res / "runs" / "g" / task / solver / "seed0" / "recon.npz")["recon"])


def _direct(cfg, task, solver, sigma_y, run=0):
    """The solver called by hand the way the pipeline documents it (generator per batch; run j > 0
    of best_of from its own stream)."""
    meta, m = _meas(cfg["_res"], task)
    op = P.operator_for(meta)
    prior = P.build_prior(cfg, "g")
    e = C.solver_entry(cfg, solver, task)
    alg = solvers.build(e["solver"], **e["params"])
    g = generator("g", task, solver, 0, "batch0", *([f"run{run}"] if run else []))
    return alg.solve(m["y"], op, solvers.CountingDenoiser(prior), sigma_y, g).detach().float()


def test_tasks_sigma_y_per_task_project(tmp_path):
    """`tasks` limits the runs; `sigma_y` is what the solver is told (run.json keeps both and the
    output equals a direct call with the told value); `per_task` changes the step count on one task
    only (NFE per image = steps for DDRM); `project` makes A x = A A^+ y exactly."""
    cfg = cfg_with(
        ddrm_told0={"solver": "ddrm", "params": {"steps": 4}, "sigma_y": 0.0, "tasks": ["inpaint_half"]},
        ddrm_pt={"solver": "ddrm", "params": {"steps": 4}, "per_task": {"deblur": {"steps": 2}}},
        ddrm_proj={"solver": "ddrm", "params": {"steps": 2}, "project": True})
    cfg["_res"] = res = tmp_path
    planned = {(t, s) for _, t, s, _ in C.planned_runs(cfg)}
    assert ("deblur", "ddrm_told0") not in planned and ("inpaint_half", "ddrm_told0") in planned
    lb, runs = run_all({k: v for k, v in cfg.items() if k != "_res"}, res)
    assert len(lb) == 1 + 2 + 2 and set(lb["status"]) == {"ok"}

    told = runs["g", "inpaint_half", "ddrm_told0", 0]
    assert told["sigma_y"] == 0.05 and told["sigma_y_solver"] == 0.0
    assert runs["g", "inpaint_half", "ddrm_pt", 0]["sigma_y_solver"] == 0.05
    x_told = _recon(res, "inpaint_half", "ddrm_told0")
    assert torch.allclose(x_told, _direct(cfg, "inpaint_half", "ddrm_told0", 0.0), atol=1e-6)
    assert not torch.allclose(x_told, _direct(cfg, "inpaint_half", "ddrm_told0", 0.05), atol=1e-3)

    assert runs["g", "deblur", "ddrm_pt", 0]["params"]["steps"] == 2
    assert runs["g", "inpaint_half", "ddrm_pt", 0]["params"]["steps"] == 4
    assert runs["g", "deblur", "ddrm_pt", 0]["nfe_per_image"] == 2
    assert runs["g", "inpaint_half", "ddrm_pt", 0]["nfe_per_image"] == 4

    for task in ("inpaint_half", "deblur"):
        meta, m = _meas(res, task)
        op = P.operator_for(meta)
        x = _recon(res, task, "ddrm_proj")
        target = op(op.pinv(m["y"]))                  # A A^+ y (= y on inpainting)
        assert (op(x) - target).abs().max() < 1e-4, task
        assert runs["g", task, "ddrm_proj", 0]["project"] is True
        plain = _direct(cfg, task, "ddrm_proj", 0.05)  # the same run without the post-step
        assert (op(plain) - target).abs().max() > 1e-2  # so the projection did something
    assert lb.loc[lb["solver"] == "ddrm_proj", "project"].all()
    assert (lb.loc[lb["solver"] == "ddrm_told0", "sigma_y_solver"] == 0.0).all()


def test_best_of_picks_the_ground_truth_best_run(tmp_path):
    """best_of k = 3 by PSNR: per image the recon is the run (of the 3 seeded streams) with the
    highest PSNR against x0; NFEs count all 3 runs; run.json and the leaderboard say ORACLE."""
    import metrics

    cfg = cfg_with(ddrm_best={"solver": "ddrm", "params": {"steps": 4}, "best_of": {"k": 3, "by": "psnr"},
                              "tasks": ["inpaint_half"]})
    cfg["_res"] = res = tmp_path
    lb, runs = run_all({k: v for k, v in cfg.items() if k != "_res"}, res)
    _, m = _meas(res, "inpaint_half")
    cands = [_direct(cfg, "inpaint_half", "ddrm_best", 0.05, run=j) for j in range(3)]
    psnr = metrics.build("psnr")
    scores = np.stack([np.asarray(psnr.per_image(c, m["x"], {})) for c in cands])
    best = scores.argmax(0)
    expect = torch.stack([cands[j][i] for i, j in enumerate(best)])
    got = _recon(res, "inpaint_half", "ddrm_best")
    assert torch.allclose(got, expect, atol=1e-6)
    assert len({tuple(c.flatten()[:5].tolist()) for c in cands}) == 3   # three different streams
    run = runs["g", "inpaint_half", "ddrm_best", 0]
    assert run["nfe_per_image"] == 3 * 4
    assert list(run["best_of_choice"].values()) == best.tolist()
    assert "best of 3 runs per image by psnr against the ground truth" in run["oracle"][0]
    assert "ground truth" in lb.loc[lb["solver"] == "ddrm_best", "oracle"].iloc[0]
    assert len(lb) == 1


def test_oracle_init_hands_x_sigma_from_the_measure_step(tmp_path, init_echo):
    """The measure step writes x_sigma = x0 + sigma * eta (eta from the documented generator) for
    each sigma an entry asks for; the solver gets init=(x_sigma, sigma); run.json records it."""
    cfg = cfg_with(echo={"solver": "test_init_echo", "oracle_init": {"sigma": 0.5}, "tasks": ["deblur"]})
    cfg["_res"] = res = tmp_path
    assert C.oracle_sigmas(cfg) == [0.5]
    lb, runs = run_all({k: v for k, v in cfg.items() if k != "_res"}, res)
    meta, m = _meas(res, "deblur")
    eta = torch.randn(m["x"].shape, generator=generator("g", "deblur", 0, "oracle_init", "0.5"))
    assert torch.allclose(m["oracle"][0.5], m["x"] + 0.5 * eta)
    assert torch.allclose(_recon(res, "deblur", "echo"), m["x"] + 0.5 * eta)
    assert meta["oracle_init"]["sigmas"] == [0.5]
    run = runs["g", "deblur", "echo", 0]
    assert run["oracle_init"] == {"sigma": 0.5} and "x0 + 0.5 * eta" in run["oracle"][0]
    # a grid without oracle entries writes no x_sigma (and its measure params are unchanged)
    assert "oracle_init" not in C.measure_spec(BASE, "g", "deblur")
    assert C.measure_spec(cfg, "g", "deblur")["oracle_init"] == [0.5]


@pytest.mark.parametrize("entry,needles", [
    ({"solver": "ddrm", "oracle_init": {"sigma": 0.5}},
     ["solvers.bad.oracle_init", "does not accept an initialisation", "accepts_init"]),
    ({"solver": "ddrm", "per_task": {"nope": {"steps": 3}}}, ["solvers.bad.per_task.nope", "no task 'nope'"]),
    ({"solver": "ddrm", "per_task": {"deblur": {"stepz": 3}}}, ["solvers.bad.per_task.deblur", "stepz"]),
    ({"solver": "ddrm", "per_task": {"deblur": {"steps": 2.5}}}, ["solvers.bad.per_task.deblur.steps", "int"]),
    ({"solver": "ddrm", "sweep": {"steps": [2, 3]}, "per_task": {"deblur": {"steps": 2}}},
     ["solvers.bad.per_task.deblur", "steps is swept"]),
    ({"solver": "ddrm", "tasks": ["deblurr"]}, ["solvers.bad.tasks", "deblurr"]),
    ({"solver": "ddrm", "best_of": {"k": 2, "by": "fid"}}, ["solvers.bad.best_of.by", "per set"]),
    ({"solver": "ddrm", "best_of": {"k": 2, "by": "psnrr"}}, ["solvers.bad.best_of.by", "psnrr"]),
    ({"solver": "ddrm", "best_of": {"k": 1}}, ["best_of", "k"]),                       # schema: k >= 2
    ({"solver": "ddrm", "sigma_y": -0.1}, ["sigma_y", "-0.1"]),                         # schema: >= 0
    ({"solver": "ddrm", "project": "yes"}, ["project", "yes"]),                         # schema: boolean
    ({"solver": "ddrm", "oracle_init": {"sigma": 0.5, "seed": 1}}, ["oracle_init", "seed"]),
])
def test_bad_feature_keys_are_named(entry, needles):
    cfg = cfg_with(bad=entry)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_project_and_svd_solvers_on_forward_only_tasks():
    """`project` and SVD solvers are refused on an operator without a pseudo-inverse (naming the key
    and the fix), and accepted once `tasks:` keeps them off that task."""
    cfg = cfg_with(reddiff={"params": {"steps": 2}, "project": True}, ddrm={"params": {"steps": 2}})
    cfg["tasks"]["pr"] = {"operator": "phase_retrieval", "sigma_y": 0.05}
    with pytest.raises(ConfigError) as e:
        validate(copy.deepcopy(cfg))
    msg = str(e.value)
    assert "solvers.reddiff.project" in msg and "phase_retrieval" in msg and "tasks:" in msg
    assert "solvers.ddrm x tasks.pr" in msg                        # DDRM needs the SVD
    cfg["solvers"]["reddiff"]["tasks"] = ["inpaint_half", "deblur"]
    cfg["solvers"]["ddrm"]["tasks"] = ["inpaint_half", "deblur"]
    validate(cfg)
    assert ("pr", "ddrm") not in {(t, s) for _, t, s, _ in C.planned_runs(cfg)}


def test_random_subset_is_seeded_and_kept_in_order():
    ids = [f"{i:05d}" for i in range(100)]
    a = P.random_subset(ids, 7, 0, "d", "ffhq256")
    assert a == P.random_subset(ids, 7, 0, "d", "ffhq256") and a == sorted(a) and len(set(a)) == 7
    assert a != ids[:7] and a != P.random_subset(ids, 7, 1, "d", "ffhq256")
    with pytest.raises(ValueError, match="datasets.d"):
        P.random_subset(ids, 101, 0, "d", "ffhq256")


PLUGIN = '''
import solvers
from solvers.registry import register


@register("test_init_echo")
class InitEcho(solvers.Solver):
    """Test-only plugin (tests/test_config_features.py): returns the initialisation it is handed."""
    defaults = dict(steps=1)
    needs = frozenset({"forward"})
    accepts_init = True

    def solve(self, y, operator, denoiser, sigma_y, generator, init=None):
        return init[0].clone()
'''


def test_features_through_snakemake(tmp_path):
    """The rules' side: the measure rule writes x_sigma for an oracle entry (its params carry the
    sigmas), the run list honours `tasks:`, the report footnotes the oracle and the told sigma_y."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "dipbench_test_plugin.py").write_text(PLUGIN)
    cfg = cfg_with(echo={"solver": "test_init_echo", "oracle_init": {"sigma": 0.5}, "tasks": ["deblur"]},
                   ddrm={"params": {"steps": 2}, "tasks": ["inpaint_half"]},
                   ddrm0={"solver": "ddrm", "params": {"steps": 2}, "sigma_y": 0.0, "tasks": ["inpaint_half"]})
    cfg["plugins"] = ["dipbench_test_plugin"]
    cfg["results"] = str(tmp_path / "res")
    cfg["tables"] = {"specs": [{"id": "t", "metrics": ["psnr"], "layouts": [
        {"datasets": ["g"], "columns": {"Half": "inpaint_half", "Deblur": "deblur"},
         "rows": {"DDRM": "ddrm", "DDRM told 0": "ddrm0", "Echo": "echo"}}]}]}
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'plug'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(tmp_path / "c.yaml")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lb = pd.read_csv(tmp_path / "res" / "leaderboard.csv")
    assert len(lb) == 3 and set(lb["status"]) == {"ok"}
    z = np.load(tmp_path / "res" / "measurements" / "g" / "deblur" / "seed0" / "measurement.npz")
    assert C.oracle_key(0.5) in z.files
    md = (tmp_path / "res" / "report" / "tables" / "t__g.md").read_text()
    assert "ORACLE" in md and "Echo" in md and "σ_y told to the solver: 0" in md and "DDRM told 0" in md
    run = json.loads((tmp_path / "res" / "runs" / "g" / "deblur" / "echo" / "seed0" / "run.json").read_text())
    assert run["oracle_init"] == {"sigma": 0.5}
