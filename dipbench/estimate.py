"""What a grid will cost before it runs: network calls x measured time per call.

    python -m dipbench.estimate --configfile config/paper/vml_map.yaml [--device a100] [--csv out.csv]
    python -m dipbench.estimate --measure edm_unet --batches 1,4,16      # add rows for this machine

Per dataset x solver entry: NFE and VJP per image (counted by running the solver once on a stand-in
problem: a 4-number Gaussian prior and an identity operator, so the count costs milliseconds; the
counts depend on the solver's parameters, not on the image), x images x seeds x tasks, x the
measured time of one forward / one backward of that dataset's prior on the named device at the
config's batch size (``dipbench/net_times.csv``: one row per prior x device x batch, with how it was
measured).  A job (dataset x task x solver x seed) takes ceil(images / batch) batches, each
NFE x t_forward + VJP x t_vjp; the solvers' own work around the network is at most 10% of that on
the trained prior (benchmarks/perf.py), so the estimate is the network time alone and a job's
SLURM runtime is ``runtime_safety`` (config ``resources: {solve: {runtime_safety: 3}}``) times it
plus ``LOAD_MIN`` minutes for start-up and model loading, at least ``MIN_RUNTIME`` minutes.

A prior x device pair without a measured row has no estimate: the tool says so, names the command
that measures it, and the SLURM runtime falls back to the size-class formula
(dipbench/config.py ``solve_resources``).  GPU rows are listed but not yet measured (no GPU was
available where the table was made).
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("net_times.csv")
LOAD_MIN = 5          # minutes added to a job's runtime for interpreter start, imports, model loading
MIN_RUNTIME = 30      # minutes: the floor of a solve job's request (as the size-class formula's); a short
                      # job asking for a little more costs nothing, one killed at its limit costs a retry
SAFETY = 3.0          # default runtime_safety
FIELDS = ["prior", "device", "batch", "t_forward_ms", "t_vjp_ms", "status", "load_avg", "command", "date"]


def device_name(cfg: dict) -> str:
    """The table's device a config runs on: `estimate_device` when given, else `cpu` for
    device: cpu and `gpu` (no measured rows: no estimate) otherwise."""
    if cfg.get("estimate_device"):
        return str(cfg["estimate_device"])
    return "cpu" if str(cfg.get("device", "auto")) == "cpu" else "gpu"


@functools.lru_cache(maxsize=None)
def _rows(path: str = str(TABLE)) -> tuple:
    with open(path, newline="") as f:
        return tuple(dict(r) for r in csv.DictReader(f, skipinitialspace=True) if not r["prior"].startswith("#"))


def net_time(prior: str, device: str, batch: int, table: str | None = None):
    """(t_forward_s, t_vjp_s, how) for one call at ``batch`` or None when no row is measured.
    An unmeasured batch size takes the nearest measured one, scaled linearly when larger (an upper
    bound: per-image cost falls with the batch) -- ``how`` says which row was used."""
    rows = [r for r in _rows(table or str(TABLE)) if r["prior"] == prior and r["device"] == device
            and r["status"].strip() == "measured"]
    if not rows:
        return None
    by_b = {int(r["batch"]): r for r in rows}
    if batch in by_b:
        r = by_b[batch]
        return float(r["t_forward_ms"]) / 1e3, float(r["t_vjp_ms"]) / 1e3, f"measured at batch {batch}"
    below = [b for b in by_b if b < batch]
    b = max(below) if below else min(by_b)
    scale = batch / b if b < batch else 1.0
    r = by_b[b]
    return (float(r["t_forward_ms"]) * scale / 1e3, float(r["t_vjp_ms"]) * scale / 1e3,
            f"batch {batch} from the batch-{b} row" + (f" x {scale:g}" if scale != 1 else ""))


def _stand_in(kind: str):
    import torch

    import operators
    import priors

    n = 4
    if kind == "latent":
        prior = priors.build("latent_gaussian", latent_mean=torch.zeros(n), latent_cov=torch.eye(n, dtype=torch.float64),
                             decoder=torch.eye(n, dtype=torch.float64), x_shape=(n,))
    else:
        prior = priors.build("gaussian", mean=torch.zeros(n), cov=torch.eye(n, dtype=torch.float64))
    return prior, operators.build("matrix", (n,), matrix=torch.eye(n))


@functools.lru_cache(maxsize=None)
def _count(solver: str, params_json: str) -> tuple[int, int] | None:
    import torch

    import solvers

    params = json.loads(params_json)
    for kind in ("pixel", "latent"):
        prior, op = _stand_in(kind)
        den = solvers.CountingDenoiser(prior)
        try:
            alg = solvers.build(solver, **params)
            y = torch.zeros((1,) + tuple(op.y_shape))
            alg.solve(y, op, den, 0.05, torch.Generator().manual_seed(0))
        except Exception:  # noqa: BLE001 - e.g. a latent solver on the pixel stand-in: try the next
            continue
        return den.nfe, den.vjp
    return None


def counts(solver: str, params: dict) -> tuple[int, int] | None:
    """(NFE, VJP) per image of one solver entry (None when the stand-in cannot run it)."""
    return _count(solver, json.dumps(params, sort_keys=True, default=str))


def job_seconds(cfg: dict, dataset: str, task: str, entry: str, device: str | None = None):
    """Estimated seconds of one solve job (all images of the dataset, one seed) and the details, or
    (None, reason)."""
    from . import config as C

    d = C.dataset_entry(cfg, dataset)
    prior = d["prior"]["name"]
    dev = device or device_name(cfg)
    batch = int(cfg.get("batch_size") or 1)
    n = int(d["n_images"] or 1000)
    nt = net_time(prior, dev, min(batch, n))
    if nt is None:
        return None, f"no measured network time for prior {prior} on device {dev} (dipbench/net_times.csv; " \
                     f"measure it there with: python -m dipbench.estimate --measure {prior} --device-name {dev})"
    e = C.solver_entry(cfg, entry, task)
    c = counts(e["solver"], e["params"])
    if c is None:
        return None, f"solver {e['solver']} could not be counted on the stand-in problem"
    k = int((e.get("best_of") or {}).get("k", 1))
    nfe, vjp = c[0] * k, c[1] * k
    batches = math.ceil(n / min(batch, n))
    secs = batches * (nfe * nt[0] + vjp * nt[1])
    return secs, dict(prior=prior, device=dev, batch=min(batch, n), images=n, nfe=nfe, vjp=vjp,
                      t_forward_ms=1e3 * nt[0], t_vjp_ms=1e3 * nt[1], how=nt[2])


def runtime_minutes(cfg: dict, dataset: str, task: str, entry: str) -> int | None:
    """SLURM runtime (minutes) of one solve job from the estimate: safety x estimate + LOAD_MIN (at
    least MIN_RUNTIME), or
    None when there is no estimate (the caller falls back to its formula)."""
    secs, _ = job_seconds(cfg, dataset, task, entry)
    if secs is None:
        return None
    safety = float(((cfg.get("resources") or {}).get("solve") or {}).get("runtime_safety", SAFETY))
    return max(MIN_RUNTIME, math.ceil(safety * secs / 60) + LOAD_MIN)


def estimate(cfg: dict, device: str | None = None) -> dict:
    from . import config as C

    rows, missing = [], set()
    seeds = len(cfg["seeds"])
    total, longest = 0.0, (0.0, None)
    for (ds, task, entry, seed) in C.planned_runs(cfg):
        if seed != cfg["seeds"][0]:
            continue                          # seeds cost the same: counted once, multiplied
        secs, info = job_seconds(cfg, ds, task, entry, device)
        if secs is None:
            missing.add(info)
            rows.append(dict(dataset=ds, task=task, solver=entry, seeds=seeds, job_s=None))
            continue
        rows.append(dict(dataset=ds, task=task, solver=entry, seeds=seeds, job_s=secs, **info))
        total += secs * seeds
        if secs > longest[0]:
            longest = (secs, f"{ds}/{task}/{entry}/seed{seed}")
    return dict(rows=rows, total_s=total, longest_s=longest[0], longest_job=longest[1],
                device=device or device_name(cfg), missing=sorted(missing),
                jobs=len(rows) * seeds, estimated_jobs=sum(r["job_s"] is not None for r in rows) * seeds)


def summary_line(est: dict) -> str:
    done, jobs = est["estimated_jobs"], est["jobs"]
    if not done:
        return (f"no cost estimate on {est['device']} for any of the {jobs} solve jobs: " + "; ".join(est["missing"]))
    s = (f"estimated cost on {est['device']}: {est['total_s'] / 3600:.2f} device-hours over {done} of {jobs} solve "
         f"jobs; longest job {est['longest_s'] / 60:.1f} min ({est['longest_job']})")
    if est["missing"]:
        s += f"; {jobs - done} jobs without an estimate ({len(est['missing'])} reason(s): python -m dipbench.estimate)"
    return s


def table(est: dict) -> str:
    """Per dataset x solver: summed over tasks."""
    agg: dict = {}
    for r in est["rows"]:
        key = (r["dataset"], r["solver"])
        a = agg.setdefault(key, dict(tasks=0, nfe=r.get("nfe"), vjp=r.get("vjp"), images=r.get("images"),
                                     seeds=r["seeds"], t_f=r.get("t_forward_ms"), t_v=r.get("t_vjp_ms"),
                                     secs=0.0, known=True))
        a["tasks"] += 1
        if r["job_s"] is None:
            a["known"] = False
        else:
            a["secs"] += r["job_s"] * r["seeds"]
    lines = ["| dataset | solver | NFE / image | VJP / image | images | seeds | tasks | t_fwd ms | t_vjp ms | device-hours |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (ds, s), a in agg.items():
        f = (lambda v, fmt: "n/a" if v is None else format(v, fmt))
        lines.append(f"| {ds} | {s} | {f(a['nfe'], 'd')} | {f(a['vjp'], 'd')} | {f(a['images'], 'd')} | {a['seeds']} | "
                     f"{a['tasks']} | {f(a['t_f'], '.3g')} | {f(a['t_v'], '.3g')} | "
                     f"{(a['secs'] / 3600 if a['known'] else None) and format(a['secs'] / 3600, '.3g') or ('n/a' if not a['known'] else '0')} |")
    return "\n".join(lines)


def measure(prior: str, batches: list[int], device: str, device_name: str, reps: int = 5) -> list[dict]:
    """Time one forward (no grad) and the extra of one backward of ``prior`` on this machine."""
    import datetime
    import os

    import torch

    import priors
    from benchmarks.perf import time_denoiser

    p = priors.build(prior).to(device)
    out = []
    for b in batches:
        t_fwd, t_vjp = time_denoiser(p, b, device, reps=reps)
        out.append(dict(prior=prior, device=device_name, batch=b, t_forward_ms=f"{1e3 * t_fwd:.4g}",
                        t_vjp_ms=f"{1e3 * t_vjp:.4g}", status="measured", load_avg=f"{os.getloadavg()[0]:.1f}",
                        command=f"python -m dipbench.estimate --measure {prior} --batches {b} --device-name "
                                f"{device_name} (torch threads {torch.get_num_threads()})",
                        date=datetime.date.today().isoformat()))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", default="config/default.yaml")
    ap.add_argument("--device", default=None, help="the table's device name (default: from the config)")
    ap.add_argument("--json", default=None, help="also write the per-job estimate here")
    ap.add_argument("--measure", default=None, metavar="PRIOR", help="time PRIOR here and print CSV rows")
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--device-name", default="cpu", help="with --measure: the device column")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.measure:
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
        dev = "cuda" if a.device_name != "cpu" and torch.cuda.is_available() else "cpu"
        w = csv.DictWriter(sys.stdout, FIELDS)
        for r in measure(a.measure, [int(b) for b in a.batches.split(",")], dev, a.device_name):
            w.writerow(r)
        return 0
    import yaml

    from . import config as C

    with open(a.configfile) as f:
        cfg = C.validate(yaml.safe_load(f))
    est = estimate(cfg, a.device)
    print(table(est))
    print()
    for m in est["missing"]:
        print(f"no estimate: {m}")
    print(summary_line(est))
    if a.json:
        Path(a.json).write_text(json.dumps(est, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
