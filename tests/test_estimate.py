"""Cost estimate (dipbench/estimate.py) against the perf benchmark's measurements on the embedded
grid (benchmarks/perf_overhead.csv: trained U-Net, small budgets, tasks inpaint_half / sr_x2,
batches 1/4/16, measured on the shared 2-core machine with 1 torch thread)."""
from __future__ import annotations

import copy
import csv

import pytest
import yaml

from benchmarks.perf import SMALL
from dipbench import config as C
from dipbench import estimate as E
from dipbench.paths import ROOT

ROWS = list(csv.DictReader(open(ROOT / "benchmarks" / "perf_overhead.csv")))


def test_counts_equal_the_benchmark_counts():
    """NFE / VJP per image counted on the 4-number stand-in equal the counts of the real solve on the
    U-Net (exact: the counts depend on the parameters only)."""
    seen = set()
    for r in ROWS:
        if r["solver"] in seen:
            continue
        seen.add(r["solver"])
        assert E.counts(r["solver"], SMALL[r["solver"]]) == (int(r["nfe"]), int(r["vjp"])), r["solver"]
    assert len(seen) >= 12


def test_estimate_against_measured_walls():
    """Estimate = NFE x t_forward + VJP x t_vjp from the committed `cpu-shared` rows (same machine,
    same day, 1 thread).  The machine was shared with four other sessions (load average 10-30 on 2
    cores, 30x an idle machine at the peak), which moved the time of one network call by up to 15x
    between measurements: measured / estimated lies in [0.065, 1.31] over the committed rows (the
    per-call rows were timed at load 23, some solves ran at a lower load).  Stated factor: within 16x
    either way, and the SLURM runtime's safety factor (3) covers every measured wall.  Rows
    re-measured later (diffpir, mgps after the parity fixes) carry their own run's per-call times and
    must agree within 2x (their bare-timing overheads were 0.64-1.54)."""
    ratios, same_run = [], []
    for r in ROWS:
        if r.get("t_forward_ms"):
            # rows re-measured later (log says when) carry the bare per-call times of their own run:
            # the estimate from those is checked tightly (wall / estimate = the run's bare overhead)
            est = (int(r["nfe"]) * float(r["t_forward_ms"]) + int(r["vjp"]) * float(r["t_vjp_ms"])) / 1000
            same_run.append(float(r["wall_s"]) / est)
            continue
        t = E.net_time("edm_unet", "cpu-shared", int(r["batch"]))
        est = int(r["nfe"]) * t[0] + int(r["vjp"]) * t[1]
        ratios.append(float(r["wall_s"]) / est)
    assert 1 / 16 <= min(ratios) and max(ratios) <= 16, (min(ratios), max(ratios))
    assert max(ratios) <= E.SAFETY, max(ratios)
    assert same_run and 0.5 <= min(same_run) and max(same_run) <= 2, same_run


@pytest.fixture
def ci():
    with open(ROOT / "config" / "ci.yaml") as f:
        return C.validate(yaml.safe_load(f))


def test_job_seconds_and_runtime_resource(ci):
    """A job = ceil(images / batch) batches x (NFE t_fwd + VJP t_vjp); the solve rule's runtime is
    safety x that + LOAD_MIN minutes where a row is measured, else the size-class formula."""
    cfg = copy.deepcopy(ci)
    cfg["estimate_device"] = "cpu-shared"
    secs, info = E.job_seconds(cfg, "skimage32_unet", "sr_x2", "vml_map")
    t = E.net_time("edm_unet", "cpu-shared", 4)
    assert (info["nfe"], info["vjp"], info["images"], info["batch"]) == (110, 100, 4, 4)
    assert secs == pytest.approx(110 * t[0] + 100 * t[1])
    cfg["resources"]["solve"]["runtime_safety"] = 20
    want = max(E.MIN_RUNTIME, -(-20 * secs // 60) + E.LOAD_MIN)
    assert want > E.MIN_RUNTIME                   # the estimate, not the floor, decides here
    assert C.solve_resources(cfg, "skimage32_unet", 1, "sr_x2", "vml_map")["runtime"] == want
    assert C.solve_resources(cfg, "skimage32_unet", 2, "sr_x2", "vml_map")["runtime"] == 2 * want
    cfg["resources"]["solve"]["runtime_safety"] = 1   # a short job: the floor
    assert C.solve_resources(cfg, "skimage32_unet", 1, "sr_x2", "ddrm")["runtime"] == E.MIN_RUNTIME
    # no measured row (the gpu rows are listed but not measured): the formula, as before
    cfg["estimate_device"] = "gpu"
    assert E.job_seconds(cfg, "skimage32_unet", "sr_x2", "vml_map")[0] is None
    assert C.solve_resources(cfg, "skimage32_unet", 1, "sr_x2", "vml_map")["runtime"] == \
        C.solve_resources(cfg, "skimage32_unet", 1)["runtime"]


def test_cli_prints_table_total_and_longest_job(ci, capsys):
    E.main(["--configfile", str(ROOT / "config" / "ci.yaml"), "--device", "cpu-shared"])
    out = capsys.readouterr().out
    assert "| skimage32_unet | vml_map | 110 | 100 | 4 | 2 | 3 |" in out
    assert "device-hours over 24 of 24 solve jobs; longest job" in out
    E.main(["--configfile", str(ROOT / "config" / "ci.yaml"), "--device", "gpu"])
    out = capsys.readouterr().out
    assert "no measured network time for prior edm_unet on device gpu" in out
    assert "--measure edm_unet" in out
