"""Live progress of running jobs, and stopping them on request.

Every job body in dipbench/jobs.py runs inside ``job(label, log)``.  A daemon thread prints a
heartbeat line for each job that has been silent for ``INTERVAL`` seconds (elapsed time and, for
jobs that call a network through ``solvers.CountingDenoiser``, the network calls so far), to
stderr and to the job's log.  Locally the jobs are threads of the Snakemake process, so the lines
reach the terminal; on a cluster they land in the job's SLURM log.

``request_stop()`` (installed on Ctrl-C / SIGTERM by ``install_signal_handlers``) makes the next
network call of every running job raise ``Stopped``; jobs without network calls run to their end.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

INTERVAL = float(os.environ.get("DIPBENCH_HEARTBEAT_S", "10"))

_local = threading.local()
_jobs: dict[int, "_Job"] = {}
_lock = threading.Lock()
_stop = threading.Event()
_beat: threading.Thread | None = None


class Stopped(BaseException):
    """Raised inside a job's network call after a stop request (not an Exception: the solver's
    own error handling must not record it as a failed run)."""


class Interrupted(KeyboardInterrupt, Stopped):
    """The same after Ctrl-C: Snakemake is already terminating and drops it silently (no
    traceback per running job)."""


_stop_exc: type = Stopped


class _Job:
    def __init__(self, label, log):
        self.label, self.log = label, log
        self.t0 = self.last = time.time()
        self.calls = 0

    def say(self, msg):
        self.last = time.time()
        self.log(f"[{self.label}] {msg}")


def _heartbeat():
    while True:
        time.sleep(min(1.0, INTERVAL))
        now = time.time()
        with _lock:
            due = [j for j in _jobs.values() if now - j.last >= INTERVAL]
        for j in due:
            calls = f", {j.calls} network calls so far" if j.calls else ""
            j.say(f"running {now - j.t0:.0f} s{calls}")


class job:
    """``with progress.job("solve d/t/s/seed0", log) as j:`` ... ``j.say("...")``."""

    def __init__(self, label, log=None):
        self.j = _Job(label, log or (lambda m: print(m, file=sys.stderr, flush=True)))

    def __enter__(self):
        global _beat
        key = threading.get_ident()
        with _lock:
            _jobs[key] = self.j
            if _beat is None:
                _beat = threading.Thread(target=_heartbeat, name="dipbench-heartbeat", daemon=True)
                _beat.start()
        _local.job = self.j
        return self.j

    def __exit__(self, *exc):
        with _lock:
            _jobs.pop(threading.get_ident(), None)
        _local.job = None
        return False


def on_network_call(den) -> None:
    """Called by solvers.CountingDenoiser on every forward call (cheap: a counter and a flag)."""
    if _stop.is_set():
        raise _stop_exc("stopped on request (Ctrl-C / SIGTERM); the job's outputs are removed and re-made next run")
    j = getattr(_local, "job", None)
    if j is not None:
        j.calls += 1


def request_stop(exc: type = Stopped) -> None:
    global _stop_exc
    _stop_exc = exc
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def install_signal_handlers(unlock=None) -> None:
    """First Ctrl-C or SIGTERM: running jobs stop at their next network call and Snakemake exits
    as it would (Ctrl-C: at once, marking them incomplete; SIGTERM: after they end).  Second
    Ctrl-C: release Snakemake's lock (``unlock()``) and exit at once with status 130 -- no
    tracebacks; the unfinished jobs' outputs are incomplete and re-made by the next run
    (rerun-incomplete)."""
    prev_term = signal.getsignal(signal.SIGTERM)

    def on_int(signum, frame):
        if _stop.is_set():
            print("\ndipbench: second Ctrl-C: exiting now; unfinished jobs are re-made next run "
                  "(if snakemake then says the directory is locked: snakemake --unlock)",
                  file=sys.stderr, flush=True)
            try:
                if unlock is not None:
                    unlock()
            finally:
                os._exit(130)
        request_stop(Interrupted)
        print("\ndipbench: stopping -- running jobs stop at their next network call "
              "(Ctrl-C again: exit at once)", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    def on_term(signum, frame):
        request_stop()
        print("dipbench: SIGTERM -- running jobs stop at their next network call, then Snakemake exits",
              file=sys.stderr, flush=True)
        if callable(prev_term):
            prev_term(signum, frame)

    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
