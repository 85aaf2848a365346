"""Cluster submission checks, cluster bundles, progress heartbeat and stop requests, the local
memory budget.  The real SLURM run is .ci/slurm_smoke.sh (needs root and the Debian packages)."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from dipbench import config as C
from dipbench import jobs, progress
from dipbench import slurm_preflight as P

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)

SINFO_CPU = "cpu|2|24105|(null)|infinite\n"
SINFO_GPU = "cpu|64|256000|(null)|2-00:00:00\ngpu|32|512000|gpu:a100:4(S:0-1)|2-00:00:00\n"


def test_parse_sinfo_reads_cpus_memory_and_gpus():
    nodes = P.parse_sinfo(SINFO_GPU)
    assert [(n.partition, n.cpus, n.mem_mb, n.gpus) for n in nodes] == [
        ("cpu", 64, 256000, 0), ("gpu", 32, 512000, 4)]
    assert P._gpus("gpu:2,shard:4") == 2 and P._gpus("(null)") == 0 and P._gpus("gpu") == 1


def test_gpu_request_on_a_cluster_without_gpus_points_at_device_cpu():
    reqs = [P.Request("run", 24, 2, 4000, 1), P.Request("measure", 1, 2, 8000, 0)]
    msgs = P.problems(reqs, P.parse_sinfo(SINFO_CPU), "auto")
    assert len(msgs) == 1
    assert "24 submission(s) (run) ask for a GPU" in msgs[0] and "`device: cpu`" in msgs[0]
    assert "slurm_partition" in msgs[0]
    assert P.problems(reqs, P.parse_sinfo(SINFO_GPU), "auto") == []


def test_request_larger_than_every_node_names_the_fix():
    nodes = P.parse_sinfo(SINFO_CPU)
    (msg,) = P.problems([P.Request("solve", 3, 4, 4000, 0)], nodes, "cpu")
    assert "ask for 4 CPUs" in msg and "2 CPUs" in msg and "--cores 2" in msg and "pending forever" in msg
    (msg,) = P.problems([P.Request("measure", 1, 2, 48000, 0, group=True)], nodes, "cpu")
    assert "48000 MB" in msg and "<rule>:mem_mb" in msg and "lower --cores" in msg
    (msg,) = P.problems([P.Request("cell", 1, 4, 4000, 0, group=True)], nodes, "cpu")
    assert "--cores 2" in msg and "set-threads" not in msg
    assert P.problems([P.Request("cell", 12, 2, 8000, 0)], nodes, "cpu") == []
    (msg,) = P.problems([P.Request("solve", 1, 1, 100, 0, partition="gpu")], nodes, "cpu")
    assert "partition `gpu` does not exist" in msg


def test_small_images_are_bundled_per_cell_large_ones_per_run():
    cfg = {"datasets": {"s": {"images": "skimage32", "prior": {"name": "gaussian_fit"}},
                        "b": {"images": "ffhq256", "shape": [3, 256, 256], "prior": {"name": "adm_ffhq256"}}}}
    assert C.solve_bundle(cfg, "s") == "cell" and C.solve_bundle(cfg, "b") == "run"


def test_slurm_dry_run_bundles_cells_and_caps_threads(tmp_path):
    """The ci grid under --profile slurm: 12 submissions of measure + 2 solves + 2 scores each,
    no job wider than the profile's cores (2)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["results"] = str(tmp_path / "res")
    cfg.pop("gmm_table")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--profile", "slurm", "--configfile", str(tmp_path / "cfg.yaml"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    groups = re.findall(r"Group job (cell_\S+) \(", out)
    assert len(groups) == 12 and len(set(groups)) == 12, groups
    threads = [int(t) for t in re.findall(r"\n\s+threads: (\d+)", out)]
    assert threads and max(threads) <= 2


def test_heartbeat_reports_a_silent_job_and_its_network_calls(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL", 0.2)
    lines = []
    with progress.job("solve x", lines.append):
        for _ in range(7):
            progress.on_network_call(None)
        time.sleep(1.3)
    assert any(re.fullmatch(r"\[solve x\] running \d+ s, 7 network calls so far", m) for m in lines), lines
    n = len(lines)
    time.sleep(0.5)
    assert len(lines) == n  # nothing after the job ended


def test_stop_request_ends_a_solve_at_its_next_network_call():
    import operators
    import priors
    import solvers
    import solvers.counting

    prior = priors.build("gaussian", mean=torch.zeros(3, 8, 8), cov=torch.eye(3 * 8 * 8, dtype=torch.float64))
    op = operators.build("inpaint_half", shape=(3, 8, 8))
    y = op(torch.zeros(1, 3, 8, 8))
    old = solvers.counting.hook
    solvers.counting.hook = progress.on_network_call
    den = solvers.CountingDenoiser(prior)
    try:
        timer = threading.Timer(0.05, progress.request_stop)
        timer.start()
        with pytest.raises(progress.Stopped, match="stopped on request"):
            for _ in range(10_000):
                solvers.build("ddrm", steps=20).solve(y, op, den, 0.05, torch.Generator().manual_seed(0))
        assert 0 < den.nfe < 10_000 * 20
        assert not isinstance(progress.Stopped("x"), Exception)  # solver error handling lets it through
    finally:
        progress._stop.clear()
        solvers.counting.hook = old


def test_machine_memory_budget_is_a_fraction_of_this_machine():
    import psutil

    mb = jobs.machine_mem_mb()
    assert 0 < mb <= psutil.virtual_memory().total / 1e6 * 0.85 + 1


STOP_SCRIPT = r"""
import sys, threading, time
from dipbench import progress
progress.install_signal_handlers(unlock=lambda: print("UNLOCKED", flush=True))
caught = []
def job():
    try:
        while True:
            progress.on_network_call(None)
            time.sleep(0.01)
    except BaseException as e:
        caught.append(type(e).__name__)
t = threading.Thread(target=job); t.start()
print("READY", flush=True)
try:
    time.sleep(30)
except KeyboardInterrupt:
    t.join(5)
    print("MAIN KeyboardInterrupt; job ended with", caught, flush=True)
    time.sleep(30)  # a second Ctrl-C arrives here
"""


def test_ctrl_c_stops_jobs_then_second_ctrl_c_exits_at_once_and_unlocks():
    import signal

    p = subprocess.Popen([sys.executable, "-c", STOP_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    p.send_signal(signal.SIGINT)
    assert p.stdout.readline().strip() == "MAIN KeyboardInterrupt; job ended with ['Interrupted']"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130 and "UNLOCKED" in out
    assert "second Ctrl-C: exiting now" in err and "Traceback" not in err


def test_scheduler_fix_removes_the_local_rate_limit_and_dedupes_cluster_timers():
    import sys as _sys
    from types import SimpleNamespace

    from dipbench import scheduler_fix

    def fake():
        s = SimpleNamespace(job_rate_limiter=object(), resources={"_job_count": _sys.maxsize},
                            _open_jobs=threading.Semaphore(0))
        s.timers = 0

        def reevaluate(delay):  # Snakemake's own: one more timer per call
            s.timers += 1
        s._schedule_reevalutation = reevaluate
        return s

    s = fake()
    assert scheduler_fix.calm(s, local=True).startswith("local") and s.job_rate_limiter is None
    s = fake()
    assert scheduler_fix.calm(s, local=False).startswith("cluster")
    for _ in range(50):  # 50 rounds within one timespan: one re-evaluation, not 50 chains
        s._schedule_reevalutation(0.2)
    time.sleep(0.5)
    assert s._open_jobs.acquire(blocking=False) and not s._open_jobs.acquire(blocking=False)
    s._schedule_reevalutation(0.05)  # once fired, the next one can be scheduled again
    time.sleep(0.3)
    assert s._open_jobs.acquire(blocking=False)
    assert scheduler_fix.calm(SimpleNamespace(), local=True) is None  # not the expected scheduler


def test_local_runs_bind_mem_mb_to_the_machine_budget(tmp_path):
    """A job asking more memory than the machine has is capped at the local budget (85%), so it
    runs alone instead of beside others (dry run: the job's resources show the cap)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg.pop("gmm_table")
    cfg.update(results=str(tmp_path / "res"), seeds=[0],
               datasets={"skimage32_gauss": cfg["datasets"]["skimage32_gauss"]},
               tasks={"sr_x2": cfg["tasks"]["sr_x2"]})
    cfg["resources"]["solve"] = {"mem_mb": 10 ** 8}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake("-n", "--cores", "2", "--configfile", str(tmp_path / "cfg.yaml"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    solve = re.findall(r"rule solve:\n(?:.*\n)*?\s+resources: .*?mem_mb=(\d+)", out)
    assert solve and {int(m) for m in solve} == {jobs.machine_mem_mb()}
