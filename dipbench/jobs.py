"""The rules' job bodies, called from `run:` blocks (workflow/rules/*.smk).

Local runs use threads (`force-use-threads` in profiles/default): every job runs inside the
Snakemake process, so Python, torch and the package imports are paid once per invocation instead
of once per job (measured in benchmarks/ci_split.py).  On a cluster each job is its own process
all the same (the executor starts one per job or group).

Every job body runs inside dipbench.progress.job: a job silent for 10 s prints a heartbeat line
(elapsed time, network calls so far) to the terminal and its log, and a stop request (Ctrl-C,
SIGTERM: see the Snakefile's onstart) ends it at its next network call.

Each job appends a timing record to the file named by $DIPBENCH_TIMINGS when it is set (JSON
lines: rule, pid, thread, t_enter, t_exit, and for solve the model-loading and solving seconds);
benchmarks/ci_split.py reads them to split an end-to-end run into scheduling, start-up, model
loading and solving.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from dipbench import progress

_lock = threading.Lock()


def _install_hook() -> None:
    import solvers.counting

    solvers.counting.hook = progress.on_network_call


def logger(log_files):
    """log(msg): to the rule's log file and to stderr (progress visible live)."""
    path = log_files[0] if len(log_files) else None
    if path:  # created at once: the log's existence says the job has started
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)
        if path:
            with open(path, "a") as fh:
                fh.write(str(msg) + "\n")
    return log


def _timing(rule: str, t_enter: float, **extra) -> None:
    path = os.environ.get("DIPBENCH_TIMINGS")
    if not path:
        return
    proc_start = None
    if threading.current_thread() is threading.main_thread():  # a process of its own for this job
        import psutil

        proc_start = psutil.Process().create_time()
    rec = dict(rule=rule, pid=os.getpid(), thread=threading.current_thread().name,
               proc_start=proc_start, t_enter=t_enter, t_exit=time.time(), **extra)
    with _lock, open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def _threads(n) -> None:
    import torch

    torch.set_num_threads(max(1, int(n)))


def measure(config, wildcards, output, log_files) -> None:
    t = time.time()
    log = logger(log_files)
    from dipbench.pipeline import measure as run

    w = wildcards
    with progress.job(f"measure {w.dataset}/{w.task}/seed{w.seed}", log):
        run(config, w.dataset, w.task, int(w.seed), Path(output.npz).parent)
    log(f"measured {w.dataset}/{w.task}/seed{w.seed}")
    _timing("measure", t)


def solve(config, wildcards, input, output, threads, log_files) -> dict:
    t = time.time()
    log = logger(log_files)
    from dipbench.pipeline import solve_or_record

    _threads(threads)
    _install_hook()
    w = wildcards
    with progress.job(f"solve {w.dataset}/{w.task}/{w.solver}/seed{w.seed}", log):
        info = solve_or_record(config, w.dataset, w.task, w.solver, int(w.seed),
                               Path(input.npz).parent, Path(output.run).parent, log)
    if info["status"] == "failed":
        log(f"status failed: {info['reason']}")
    else:
        log(f"status {info['status']}, {info['wall_per_image_s']:.3f}s/image, "
            f"{info['nfe_per_image']:.0f} NFE/image")
    _timing("solve", t, wall_s=info.get("wall_s"), solve_s=info.get("solve_s"),
            load_s=info.get("load_s"))
    return info


def score(config, input, output, threads, log_files) -> None:
    t = time.time()
    log = logger(log_files)
    from dipbench.pipeline import score as run

    _threads(threads)
    with progress.job(f"score {Path(output.csv).parent}", log):
        run(config, Path(input.npz).parent, Path(output.csv).parent)
    log(f"scored {Path(output.csv).parent}")
    _timing("score", t)


def aggregate(config, input, output, log_files) -> None:
    t = time.time()
    from dipbench.pipeline import aggregate as run

    log = logger(log_files)
    with progress.job("aggregate", log):
        run(config, [Path(p).parent for p in input.scores], output[0], log=log)
    _timing("aggregate", t)


def report(config, input, output, log_files) -> None:
    t = time.time()
    log = logger(log_files)
    import matplotlib

    matplotlib.use("Agg")
    from report.build import build_report

    out = Path(output.index).parent
    for d in (output.tables, output.figures):
        Path(d).mkdir(parents=True, exist_ok=True)  # directory outputs exist even when empty
    with progress.job("report", log):
        written = build_report(config, input.leaderboard, out)
    log(f"report: {len(written)} files under {out}")
    _timing("report", t)


def gmm_table(argv, threads, log_files) -> None:
    """benchmarks/gmm_table.py in this process (no second interpreter and torch import); its
    per-replicate lines go to the terminal, the heartbeat to the terminal and the log."""
    t = time.time()
    log = logger(log_files)
    from benchmarks import gmm_table as bench

    _threads(threads)
    with progress.job("gmm_table", log):
        bench.main(list(argv))
    log(f"gmm_table: done in {time.time() - t:.0f} s")
    _timing("gmm_table", t)


def machine_mem_mb(fraction: float = 0.85) -> int:
    """The local memory budget: `fraction` of this machine's memory (or of the container's cgroup
    limit when lower), in MB.  The Snakefile gives it to Snakemake as the global `mem_mb` resource
    of local runs, so jobs run together only while their `mem_mb` requests fit in it."""
    import psutil

    total = psutil.virtual_memory().total
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            v = Path(f).read_text().strip()
        except OSError:
            continue
        if v.isdigit() and 0 < int(v) < total:
            total = int(v)
    return int(total * fraction / 1e6)
