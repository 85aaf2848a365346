"""Where the end-to-end run's wall time goes: scheduling, start-up, model loading, solving.

Runs `snakemake --cores N --configfile CONFIG` into a fresh results directory with
$DIPBENCH_TIMINGS set (dipbench/jobs.py appends one record per job) and splits the wall time of
the whole invocation:

  start-up     per job: the time from its process' start to the job body (0 for a job that runs
               in a thread of the Snakemake process, the local default) + the Snakemake process'
               own interpreter start and package imports before it begins scheduling
  model load   solve jobs: building the operator and the prior (checkpoint read)
  solving      solve jobs: the solvers' time (run.json solve_s)
  other jobs   measure / score / aggregate / report bodies, and solve bookkeeping (writing outputs)
  scheduling   the rest of the invocation's wall time not covered by any job body: parsing the
               Snakefile, building the DAG, job selection, output checks, Snakemake's polling

Also reported: the CPU seconds of the Snakemake process' main thread (what Snakemake itself burns;
jobs run in other threads -- the load of a shared machine does not inflate it, while it inflates
every wall-clock part), of the whole process (all jobs included: process CPU / cores bounds the
wall time of the run on an idle machine from below), and the load average during the run.

With --cores 1 jobs run one after another and the parts add up to the wall time exactly; with
more cores the job parts are summed over jobs (CPU-side), so compare scheduling and start-up with
the wall time ("% of wall") and read the job parts as busy time.

    python -m benchmarks.ci_split --configfile config/ci.yaml --cores 1
    python -m benchmarks.ci_split --configfile config/ci.yaml --cores 2 --md results/report/ci_split.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(configfile: str, cores: int, results: str | None = None, extra: list[str] | None = None) -> dict:
    results = results or tempfile.mkdtemp(prefix="dipbench_ci_split_")
    timings = Path(results) / "timings.jsonl"
    Path(results).mkdir(parents=True, exist_ok=True)
    timings.unlink(missing_ok=True)
    env = dict(os.environ, DIPBENCH_TIMINGS=str(timings))
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", configfile,
           "--config", f"results={results}", "-q", *(extra or [])]
    load0 = os.getloadavg()[0]
    t0 = time.time()
    out, err = Path(results) / "snakemake.out", Path(results) / "snakemake.err"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fo, stderr=fe, text=True)
        main_cpu = proc_cpu = None
        while proc.poll() is None:  # the Snakemake process' main thread: parsing, DAG, scheduling
            main_cpu = _thread_cpu(proc.pid) or main_cpu
            proc_cpu = _thread_cpu(proc.pid, whole=True) or proc_cpu
            time.sleep(0.2)
    wall = time.time() - t0
    if proc.returncode:
        sys.stderr.write(out.read_text()[-4000:] + err.read_text()[-4000:])
        raise SystemExit(f"snakemake failed (exit {proc.returncode}): {' '.join(cmd)}")
    recs = [json.loads(line) for line in timings.read_text().splitlines()] if timings.exists() else []
    return split(recs, wall, t0, cores) | dict(config=configfile, cores=cores, results=results,
                                                command=" ".join(cmd[1:]), main_thread_cpu_s=main_cpu,
                                                process_cpu_s=proc_cpu,
                                                load_avg=(load0 + os.getloadavg()[0]) / 2)


def _thread_cpu(pid: int, whole: bool = False) -> float | None:
    """CPU seconds of the process' main thread (Linux /proc; None elsewhere).  Jobs run in other
    threads, so this is what Snakemake itself burns: imports, parsing, DAG, job selection, output
    checks -- a figure the machine's load does not inflate, unlike wall-clock splits.
    whole=True: the whole process (every thread: the jobs' work too)."""
    try:
        stat = f"/proc/{pid}/stat" if whole else f"/proc/{pid}/task/{pid}/stat"
        fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - the process is gone: start-up unknown
        return None


def split(recs: list[dict], wall: float, t0: float, cores: int) -> dict:
    by_rule: dict[str, int] = {}
    startup = load = solving = other = 0.0
    intervals = []
    for r in recs:
        by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + 1
        body = r["t_exit"] - r["t_enter"]
        intervals.append((r["t_enter"], r["t_exit"]))
        if r.get("proc_start") is not None:  # a dedicated process per job
            startup += r["t_enter"] - r["proc_start"]
            intervals.append((r["proc_start"], r["t_enter"]))
        if r["rule"] == "solve":
            lo, so = r.get("load_s") or 0.0, r.get("solve_s") or 0.0
            load += lo
            solving += so
            other += body - lo - so
        else:
            other += body
    # the Snakemake process' own start-up: interpreter + imports until its Snakefile is parsed is
    # counted as scheduling (Snakemake cannot schedule without it), except the heavy imports the
    # job bodies would need anyway, which we time here in a fresh interpreter
    imports = _import_cost()
    covered = _union(intervals)
    scheduling = max(wall - covered - imports, 0.0)
    return dict(wall_s=wall, jobs=by_rule, n_jobs=len(recs), startup_s=startup + imports, load_s=load,
                solve_s=solving, other_jobs_s=other, scheduling_s=scheduling, import_s=imports,
                busy_union_s=covered,
                overhead_pct=100 * (scheduling + startup + imports) / wall if wall else float("nan"))


def _union(iv):
    tot, end = 0.0, None
    for a, b in sorted(iv):
        if end is None or a > end:
            tot += b - a
            end = b
        elif b > end:
            tot += b - end
            end = b
    return tot


def _import_cost() -> float:
    code = ("import time; t = time.time(); import torch, dipbench.pipeline, solvers, priors, operators, metrics; "
            "print(time.time() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return float(out.stdout.strip() or "nan")


def markdown(rows: list[dict]) -> str:
    lines = ["| config | cores | jobs | wall s | scheduling s | start-up s | model loading s | solving s | "
             "other job work s | scheduling + start-up | Snakemake main thread CPU s | process CPU s | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cpu, pcpu = r.get("main_thread_cpu_s"), r.get("process_cpu_s")
        lines.append(f"| {r['config']} | {r['cores']} | {r['n_jobs']} | {r['wall_s']:.1f} | {r['scheduling_s']:.1f} | "
                     f"{r['startup_s']:.1f} | {r['load_s']:.1f} | {r['solve_s']:.1f} | {r['other_jobs_s']:.1f} | "
                     f"{r['overhead_pct']:.1f}% | {'n/a' if cpu is None else f'{cpu:.1f}'} | "
                     f"{'n/a' if pcpu is None else f'{pcpu:.1f}'} | "
                     f"{r.get('load_avg', float('nan')):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default="config/ci.yaml")
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--md", default=None, help="also write the table here (Markdown)")
    ap.add_argument("--json", default=None)
    ap.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments (after --)")
    a = ap.parse_args(argv)
    rows = []
    for c in a.cores:
        r = measure(a.configfile, c, extra=a.snakemake_args)
        rows.append(r)
        print(f"cores={c}: wall {r['wall_s']:.1f}s over {r['n_jobs']} jobs {r['jobs']}", flush=True)
    md = markdown(rows)
    print(md)
    if a.md:
        Path(a.md).parent.mkdir(parents=True, exist_ok=True)
        Path(a.md).write_text(md)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
