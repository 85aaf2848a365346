"""The rules' job bodies, called from `run:` blocks (workflow/rules/*.smk).

Local runs use threads (`force-use-threads` in profiles/default): every job runs inside the
Snakemake process, so Python, torch and the package imports are paid once per invocation instead
of once per job (measured in benchmarks/ci_split.py).  On a cluster each job is its own process
all the same (the executor starts one per job or group).

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

_lock = threading.Lock()


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

    run(config, wildcards.dataset, wildcards.task, int(wildcards.seed), Path(output.npz).parent)
    log(f"measured {wildcards.dataset}/{wildcards.task}/seed{wildcards.seed}")
    _timing("measure", t)


def solve(config, wildcards, input, output, threads, log_files) -> dict:
    t = time.time()
    log = logger(log_files)
    from dipbench.pipeline import solve_or_record

    _threads(threads)
    w = wildcards
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
    run(config, Path(input.npz).parent, Path(output.csv).parent)
    log(f"scored {Path(output.csv).parent}")
    _timing("score", t)


def aggregate(config, input, output, log_files) -> None:
    t = time.time()
    from dipbench.pipeline import aggregate as run

    run(config, [Path(p).parent for p in input.scores], output[0], log=logger(log_files))
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
    written = build_report(config, input.leaderboard, out)
    log(f"report: {len(written)} files under {out}")
    _timing("report", t)
