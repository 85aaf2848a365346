"""The four stages behind the Snakemake rules: measure -> solve -> score -> aggregate.

Paths (DESIGN.md, Outputs):
  results/measurements/{dataset}/{task}/seed{seed}/measurement.npz   x, y, ids (+ x_map if exact)
  results/measurements/{dataset}/{task}/seed{seed}/meta.json         operator, params, sigma_y
  results/runs/{dataset}/{task}/{solver}/seed{seed}/{recon.npz, recon/, run.json, scores.csv}
"""
from __future__ import annotations

import math
import resource
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from . import config as C
from .io import read_json, save_png, write_csv, write_json, write_npz
from .provenance import config_hash, now, record
from .seeding import generator, stable_seed


# ---------------------------------------------------------------------------- helpers
def resolve_device(cfg) -> str:
    dev = cfg.get("device", "auto")
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config device '{dev}' requested but CUDA is not available")
    return dev


def build_prior(cfg, dataset: str):
    import priors

    p = C.dataset_entry(cfg, dataset)["prior"]
    return priors.build(p["name"], **p["params"])


def load_images(cfg, dataset: str):
    import data

    e = C.dataset_entry(cfg, dataset)
    ds = data.build(e["images"], **e["params"])
    ids = ds.subset(e["n_images"])
    return ids, ds.load(ids)


def operator_for(meta: dict):
    import operators

    return operators.build(meta["operator"], tuple(meta["x_shape"]), **meta["operator_params"])


def load_measurement(meas_dir):
    meas_dir = Path(meas_dir)
    meta = read_json(meas_dir / "meta.json")
    z = np.load(meas_dir / "measurement.npz")
    out = {k: torch.from_numpy(z[k]) for k in ("x", "y") }
    out["x_map"] = torch.from_numpy(z["x_map"]) if "x_map" in z.files else None
    out["ids"] = [str(i) for i in z["ids"]]
    return meta, out


def peak_memory_mb(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_peak_rss"


# ---------------------------------------------------------------------------- measure
def measure(cfg, dataset: str, task: str, seed: int, out_dir) -> None:
    """y = A(x) + sigma_y * eps, eps from the generator seeded by (dataset, image-set, task, seed)."""
    out_dir = Path(out_dir)
    ids, x = load_images(cfg, dataset)
    te = C.task_entry(cfg, task)
    op, op_params = C.build_operator(te, tuple(x.shape[1:]), seed=stable_seed(dataset, task, seed, "operator"))
    with torch.no_grad():
        clean = op(x)
    g = generator(dataset, task, seed, "noise")
    y = clean + te["sigma_y"] * torch.randn(clean.shape, generator=g)
    arrays = dict(x=x.numpy(), y=y.numpy(), ids=np.array(ids))
    prior = build_prior(cfg, dataset)
    if getattr(prior, "exact", False) and hasattr(prior, "map_estimate"):
        arrays["x_map"] = prior.map_estimate(y, op, te["sigma_y"]).float().numpy()
    meta = dict(dataset=dataset, task=task, seed=seed, operator=te["operator"], operator_params=op_params,
                sigma_y=te["sigma_y"], x_shape=list(x.shape[1:]), y_shape=list(op.y_shape),
                provides=sorted(op.provides), n_images=len(ids), exact_map="x_map" in arrays,
                task_entry=te, dataset_entry=C.dataset_entry(cfg, dataset), created=now())
    write_npz(out_dir / "measurement.npz", **arrays)
    write_json(out_dir / "meta.json", meta)


# ---------------------------------------------------------------------------- solve
def solve(cfg, dataset: str, task: str, solver: str, seed: int, meas_dir, run_dir, log=print) -> dict:
    import solvers

    run_dir = Path(run_dir)
    device = resolve_device(cfg)
    entry = C.solver_entries(cfg)[solver]
    meta, m = load_measurement(meas_dir)
    started, t_start = now(), time.perf_counter()
    op = operator_for(meta).to(device)
    prior = build_prior(cfg, dataset).to(device)
    alg = solvers.build(entry["solver"], **entry["params"])
    op.require(alg.needs)
    batch = int(cfg.get("batch_size", 16))
    n = len(m["ids"])
    recon = torch.empty_like(m["x"])
    status, reasons = [], {}
    nfe = vjp = 0
    solve_s = 0.0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for start in range(0, n, batch):
        sl = slice(start, min(start + batch, n))
        y = m["y"][sl].to(device)
        den = solvers.CountingDenoiser(prior)
        g = generator(dataset, task, solver, seed, f"batch{start}", device=device)
        t0 = time.perf_counter()
        out = alg.solve(y, op, den, meta["sigma_y"], g)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        solve_s += time.perf_counter() - t0
        out = out.detach().float().cpu()
        recon[sl] = out
        nfe += den.nfe * (sl.stop - sl.start)
        vjp += den.vjp * (sl.stop - sl.start)
        finite = torch.isfinite(out.reshape(out.shape[0], -1)).all(1)
        for i, ok in zip(m["ids"][sl], finite.tolist()):
            status.append("ok" if ok else "diverged")
            if not ok:
                reasons[i] = "non-finite values in the reconstruction"
        log(f"[{dataset}/{task}/{solver}/seed{seed}] {sl.stop}/{n} images, "
            f"{solve_s:.1f}s solving, {den.nfe} NFE/{den.vjp} VJP per image")
    mem, mem_kind = peak_memory_mb(device)
    ids = m["ids"]
    write_npz(run_dir / "recon.npz", recon=recon.numpy(), ids=np.array(ids))
    if len(recon.shape) == 4:
        for i, img in zip(ids, recon.numpy()):
            save_png(run_dir / "recon" / f"{i}.png", img)
    else:
        (run_dir / "recon").mkdir(parents=True, exist_ok=True)
    info = dict(
        dataset=dataset, task=task, solver=solver, solver_registry=entry["solver"], seed=seed,
        params=alg.params, sweep_of=entry.get("sweep_of"),
        config_hash=config_hash(dict(solver=entry, task=meta["task_entry"], dataset=meta["dataset_entry"],
                                     batch_size=batch, seed=seed)),
        status="ok" if all(s == "ok" for s in status) else "diverged",
        images={i: s for i, s in zip(ids, status)}, reasons=reasons, n_images=n,
        wall_s=time.perf_counter() - t_start, solve_s=solve_s, wall_per_image_s=solve_s / max(n, 1),
        nfe_per_image=nfe / max(n, 1), vjp_per_image=vjp / max(n, 1),
        peak_memory_mb=mem, memory_kind=mem_kind, batch_size=batch, device_kind=device,
        start=started, end=now(), measurement=str(meas_dir), **record(device))
    write_json(run_dir / "run.json", info)
    return info


def solve_or_record(cfg, dataset, task, solver, seed, meas_dir, run_dir, log=print) -> dict:
    """solve(), and on an exception write failed.json with the traceback before re-raising."""
    try:
        return solve(cfg, dataset, task, solver, seed, meas_dir, run_dir, log)
    except Exception as e:
        tb = traceback.format_exc()
        log(tb)
        write_json(Path(run_dir).parent / f"seed{seed}.failed.json",
                   dict(dataset=dataset, task=task, solver=solver, seed=seed, status="failed",
                        reason=f"{type(e).__name__}: {e}", traceback=tb, time=now()))
        raise


# ---------------------------------------------------------------------------- score
def score(cfg, meas_dir, run_dir) -> None:
    import metrics
    from metrics.base import MetricUnavailable

    run_dir = Path(run_dir)
    meta, m = load_measurement(meas_dir)
    run = read_json(run_dir / "run.json")
    z = np.load(run_dir / "recon.npz")
    recon = torch.from_numpy(z["recon"])
    ctx = dict(y=m["y"], x_map=m["x_map"], sigma_y=meta["sigma_y"], meta=meta, run=run, cfg=cfg)
    cols, unavailable, per_set = {}, {}, {}
    for name in cfg.get("metrics", []):
        metric = metrics.build(name)
        try:
            if metric.kind == "per_set":
                per_set[name] = float(metric.per_set(recon, m["x"], ctx))
            else:
                cols[name] = np.asarray(metric.per_image(recon, m["x"], ctx), dtype=np.float64)
        except MetricUnavailable as e:
            unavailable[name] = str(e)
    import pandas as pd

    df = pd.DataFrame({"image_id": m["ids"], "status": [run["images"][i] for i in m["ids"]], **cols})
    for name in per_set:
        df[name] = per_set[name]
    for name in unavailable:
        df[name] = math.nan
    bad = df["status"] != "ok"
    df.loc[bad, list(cols)] = math.nan
    write_csv(run_dir / "scores.csv", df)
    write_json(run_dir / "scores.json", dict(unavailable=unavailable, per_set=per_set,
                                               metrics=list(cfg.get("metrics", []))))


# ---------------------------------------------------------------------------- aggregate
def aggregate(cfg, run_dirs, out_csv) -> None:
    import pandas as pd

    rows = []
    metric_names = list(cfg.get("metrics", []))
    for rd in run_dirs:
        rd = Path(rd)
        run = read_json(rd / "run.json")
        sc = pd.read_csv(rd / "scores.csv")
        extra = read_json(rd / "scores.json")
        row = dict(dataset=run["dataset"], task=run["task"], solver=run["solver"], seed=run["seed"],
                   sweep_of=run.get("sweep_of"), status=run["status"],
                   n_images=run["n_images"], n_diverged=int((sc["status"] != "ok").sum()))
        for name in metric_names:
            row[name] = float(sc[name].mean()) if name in sc and sc[name].notna().any() else math.nan
        row["unavailable"] = "; ".join(f"{k}: {v}" for k, v in extra.get("unavailable", {}).items())
        row.update(wall_per_image_s=run["wall_per_image_s"], nfe_per_image=run["nfe_per_image"],
                   vjp_per_image=run["vjp_per_image"], peak_memory_mb=run["peak_memory_mb"],
                   memory_kind=run["memory_kind"], device=run["device"], config_hash=run["config_hash"],
                   git_commit=(run.get("git") or {}).get("commit"), git_dirty=(run.get("git") or {}).get("dirty"),
                   run_dir=str(rd))
        rows.append(row)
    df = pd.DataFrame(rows).sort_values(["dataset", "task", "solver", "seed"]).reset_index(drop=True)
    write_csv(out_csv, df)
