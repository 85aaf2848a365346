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


class _logged:
    """``with _logged(log):`` a job body's exception goes to the rule's log with its traceback
    (Snakemake shows it only in its own output), then propagates."""

    def __init__(self, log):
        self.log = log

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if typ is not None and issubclass(typ, Exception):
            import traceback

            self.log("".join(traceback.format_exception(typ, exc, tb)).rstrip())
        return False


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
    with progress.job(f"measure {w.dataset}/{w.task}/seed{w.seed}", log), _logged(log):
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
        args = (config, w.dataset, w.task, w.solver, int(w.seed), Path(input.npz).parent,
                Path(output.run).parent)
        if solve_in_child(config):
            info = _solve_child(args, threads, log_files[0] if len(log_files) else None, log)
        else:
            info = solve_or_record(*args, log)
    if info["status"] == "failed":
        log(f"status failed: {info['reason']}")
    else:
        log(f"status {info['status']}, {info['wall_per_image_s']:.3f}s/image, "
            f"{info['nfe_per_image']:.0f} NFE/image")
    _timing("solve", t, wall_s=info.get("wall_s"), solve_s=info.get("solve_s"),
            load_s=info.get("load_s"))
    return info


# ---------------------------------------------------------------------------- per-job memory
# A local run's jobs are threads of one Snakemake process: that process's peak resident set is
# everyone's.  So on the CPU a solve job in such a thread runs in a child process of its own,
# forked from a fork server that has imported torch and the packages once (no import per job);
# its ru_maxrss is the job's peak ("cpu_peak_rss_job_process": the job's process, including the
# ~0.3-0.5 GB Python/torch runtime it starts with, recorded as memory_baseline_mb).  On a GPU the
# figure is torch.cuda.max_memory_allocated; a cluster job is a process of its own already.
# DIPBENCH_SOLVE_CHILD=0 keeps solves in the thread (the figure is then the shared process's,
# labelled cpu_peak_rss_shared_process).
_PRELOAD = ["torch", "numpy", "dipbench.pipeline", "solvers", "priors", "operators", "data"]
_ctx = None


def solve_in_child(config) -> bool:
    if os.environ.get("DIPBENCH_SOLVE_CHILD", "1") == "0":
        return False
    if threading.current_thread() is threading.main_thread():
        return False  # a process of its own (cluster job, or a single-job run): measured in place
    if os.environ.get("SLURM_JOB_ID"):
        return False  # inside a cluster submission: a fork server would import torch once more per
        #               submission; the bundle's process figure is labelled shared
    dev = str(config.get("device", "auto"))
    if dev == "auto":
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return dev == "cpu"


def _context():
    global _ctx
    with _lock:
        if _ctx is None:
            import multiprocessing

            _ctx = multiprocessing.get_context("forkserver")
            _ctx.set_forkserver_preload(_PRELOAD)
        return _ctx


def _child_main(args, threads, log_path, conn) -> None:
    import psutil

    base = psutil.Process().memory_info().rss / 2**20
    ppid = os.getppid()  # the fork server: it exits when the Snakemake process dies (kill -9) ...

    def orphaned():      # ... and so does this job then, instead of writing outputs behind a restart
        while True:
            time.sleep(1.0)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=orphaned, name="dipbench-orphan-watch", daemon=True).start()
    os.environ["DIPBENCH_JOB_PROCESS"] = "1"  # peak_memory_mb: this process is the job's
    os.environ["DIPBENCH_MEMORY_BASELINE_MB"] = f"{base:.1f}"
    try:
        _threads(threads)
        _install_hook()
        from dipbench.pipeline import solve_or_record

        log = logger([log_path] if log_path else [])
        info = solve_or_record(*args, log)
        conn.send(("ok", info))
    except BaseException as e:  # noqa: BLE001 - handed to the parent, which fails the job
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def _solve_child(args, threads, log_path, log) -> dict:
    """solve_or_record in a forked child; a stop request terminates it; its errors fail the job."""
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child_main, args=(args, threads, log_path, send), daemon=True)
    p.start()
    send.close()
    msg = None
    try:
        while msg is None:
            if recv.poll(0.5):
                try:
                    msg = recv.recv()
                except EOFError:
                    break
            elif not p.is_alive():
                break
            elif progress.stop_requested():
                p.terminate()
                p.join(5)
                progress.on_network_call(None)  # raises the stop exception
    finally:
        if p.is_alive() and msg is None:
            p.terminate()
        p.join(30)
    if msg is None and recv.poll(0):  # sent just before it exited
        try:
            msg = recv.recv()
        except EOFError:
            pass
    if msg is None:
        code = p.exitcode
        why = (f"killed by signal {-code} (out of memory? see the log and the job's mem_mb)"
               if code is not None and code < 0 else f"exit code {code}")
        raise RuntimeError(f"solve: the job's child process ended without a result ({why})")
    status, payload = msg
    if status != "ok":
        raise RuntimeError(f"solve failed in its child process: {payload} (traceback in {log_path})")
    return payload


def score(config, input, output, threads, log_files) -> None:
    t = time.time()
    log = logger(log_files)
    from dipbench.pipeline import score as run

    _threads(threads)
    with progress.job(f"score {Path(output.csv).parent}", log), _logged(log):
        run(config, Path(input.npz).parent, Path(output.csv).parent)
    log(f"scored {Path(output.csv).parent}")
    _timing("score", t)


def aggregate(config, input, output, log_files) -> None:
    t = time.time()
    from dipbench.pipeline import aggregate as run

    log = logger(log_files)
    with progress.job("aggregate", log), _logged(log):
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
    with progress.job("report", log), _logged(log):
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
    with progress.job("gmm_table", log), _logged(log):
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


# ---------------------------------------------------------------------------- after a failed run
def _why_missing(results: str, run_dir: Path) -> str:
    """Why a run has no result: its solve failure record, else its measure job's logged error."""
    from dipbench.io import read_json
    from dipbench.pipeline import failure_marker

    mk = failure_marker(run_dir)
    if mk.exists():
        try:
            rec = read_json(mk)
            if not rec.get("resolved"):
                return f"solve failed: {rec.get('reason', '?')}"
        except ValueError:
            pass
    d, t, _s, seed = run_dir.parts[-4:]
    for rule, path in (("measure", Path(results) / "logs" / "measure" / d / t / f"{seed}.log"),
                       ("solve", Path(results) / "logs" / "solve" / d / t / _s / f"{seed}.log"),
                       ("score", Path(results) / "logs" / "score" / d / t / _s / f"{seed}.log")):
        try:
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        except OSError:
            continue
        errs = [ln for ln in lines if not ln.startswith((" ", "Traceback")) and
                ("Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0])]
        if errs:
            return f"{rule} failed: {errs[-1][:300]} (log: {path})"
    return "not run: an upstream job failed or the run stopped before it"


def partial_results(config, run_dirs, results: str, log=print) -> None:
    """After a failed run (Snakemake's onerror; with --keep-going every job that could run has run):
    leaderboard.csv and the report from what exists, the missing runs as `failed` rows with the
    reason; the report says so on its entry page."""
    from dipbench.pipeline import aggregate_partial

    if progress.stop_requested():
        return  # stopped on request (Ctrl-C / SIGTERM): exit at once, nothing to report
    res = Path(results)
    try:
        df = aggregate_partial(config, run_dirs, res / "leaderboard.csv",
                               lambda rd: _why_missing(results, Path(rd)), log=log)
        if df is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        from report.build import build_report

        out = res / "report"
        for d in (out / "tables", out / "figures"):
            d.mkdir(parents=True, exist_ok=True)
        build_report(config, res / "leaderboard.csv", out)
        idx = out / "index.md"
        missing = df[df["status"] == "failed"]
        note = [f"> **Partial results**: the run failed; {len(missing)} of {len(df)} runs have no "
                "result and are marked `failed` with the reason (the leaderboard's `reason` column). "
                "Fix the cause and run snakemake again to complete them.", ""]
        for _, r in missing.iterrows():
            note.append(f"> - {r['dataset']}/{r['task']}/{r['solver']}/seed{r['seed']}: {r['reason']}")
        if idx.exists():
            idx.write_text("\n".join(note) + "\n\n" + idx.read_text())
        log(f"dipbench: the run failed; partial leaderboard ({len(df) - len(missing)} of {len(df)} runs) "
            f"and report written to {res / 'leaderboard.csv'} and {idx} (failed runs marked with the reason)")
    except Exception as e:  # noqa: BLE001 - never mask Snakemake's own error report
        log(f"dipbench: could not build the partial report after the failure: {type(e).__name__}: {e}")
