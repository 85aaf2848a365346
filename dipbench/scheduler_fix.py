"""Stop Snakemake's scheduler from spinning (snakemake 9.27; cf. snakemake/snakemake#3804).

With `max-jobs-per-timespan` set (the default is 100/1s), every scheduling round that leaves ready
jobs waiting starts a `threading.Timer` that triggers another round one timespan later, and every
finished job starts a round of its own -- so each completion adds one more endless chain of
rounds.  Each round stats the input files of every ready job and starts a thread; the ci grid
(62 jobs on 2 cores) ran 2031 rounds, 17-19 s of the scheduler loop, and 21497 rounds under heavy
load (cProfile: 352 s in Timer.start, 90 s in job selection; benchmarks/ci_split.py measures it).

`calm(scheduler, local)` is called from the Snakefile's onstart hook, after the scheduler exists
and before it runs:
  local runs    -- no rate limit at all (it guards a cluster's controller, not threads of one
                   process): rounds happen only when a job ends.
  cluster runs  -- the limit stays, but at most one re-evaluation timer is pending at a time
                   (a daemon thread, so it never delays the exit).
Returns what it did, or None when this Snakemake's scheduler does not look as expected (then it
changes nothing).
"""
from __future__ import annotations

import sys
import threading


def calm(scheduler, local: bool) -> str | None:
    if scheduler is None or not hasattr(scheduler, "job_rate_limiter") \
            or not hasattr(scheduler, "_schedule_reevalutation") or not hasattr(scheduler, "_open_jobs"):
        return None
    if scheduler.job_rate_limiter is None:
        return "no rate limit"
    if local:
        if scheduler.resources.get("_job_count") != sys.maxsize:
            return None
        scheduler.job_rate_limiter = None
        return "local: no job rate limit (scheduling rounds only when a job ends)"
    pending = threading.Lock()

    def once(delay):
        if not pending.acquire(blocking=False):
            return  # a re-evaluation is already due

        def fire():
            pending.release()
            scheduler._open_jobs.release()

        t = threading.Timer(delay, fire)
        t.daemon = True
        t.start()

    scheduler._schedule_reevalutation = once
    return "cluster: one pending re-evaluation at a time"
