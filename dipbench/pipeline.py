"""The four stages behind the Snakemake rules: measure -> solve -> score -> aggregate.

Paths (README.md, "What is where"):
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


class InputError(RuntimeError):
    """A dataset image or checkpoint that cannot be read: the message names the file and the fix."""


def build_prior(cfg, dataset: str):
    """The dataset's prior (``_build_denoiser``); with ``datasets.<d>.consistency`` the consistency
    model is built from that entry the same way and attached (priors/with_consistency.py): the
    result is the denoiser with a ``consistency`` map and ``consistency_sigma_min``."""
    den = _build_denoiser(cfg, dataset)
    cm = C.dataset_entry(cfg, dataset).get("consistency")
    if cm is None:
        return den
    from priors.with_consistency import WithConsistency

    try:   # the same loader path (and failure messages) as the denoiser's, keyed to the cm entry
        model = _build_denoiser({"datasets": {dataset: {"prior": cm}}}, dataset)
    except InputError as e:
        raise InputError(str(e).replace(f"datasets.{dataset}.prior", f"datasets.{dataset}.consistency", 1)) from e
    return WithConsistency(den, model)


def _build_denoiser(cfg, dataset: str):
    """The dataset's prior; a checkpoint that is present but unreadable is named with the fix."""
    import priors

    p = C.dataset_entry(cfg, dataset)["prior"]
    try:
        return priors.build(p["name"], **p["params"])
    except FileNotFoundError:
        raise  # missing checkpoint: the loader's message already names the file and the command
    except Exception as e:  # noqa: BLE001 - add the file and the fix to e.g. torch's UnpicklingError
        where = _checkpoint_of(p)
        if where is None:
            raise
        from dipbench.checkpoint_format import CheckpointFormatError
        from dipbench.prefetch import PREFETCH_CMD

        if isinstance(e, CheckpointFormatError):  # read fine, content not understood: say what
            raise CheckpointFormatError(f"datasets.{dataset}.prior '{p['name']}', checkpoint {where}: "
                                        f"{e}") from e
        if not isinstance(e, _READ_ERRORS):
            raise

        raise InputError(f"datasets.{dataset}.prior '{p['name']}': cannot load checkpoint {where} "
                         f"({type(e).__name__}: {str(e)[:300]}). The file is probably truncated or "
                         f"corrupt: delete it and fetch it again with `{PREFETCH_CMD}`, or check "
                         f"the prior's `path` param.") from e


def _read_errors():
    import pickle
    import zipfile

    return (pickle.UnpicklingError, EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError,
            RuntimeError)  # torch.load reports a damaged zip archive as RuntimeError


_READ_ERRORS = _read_errors()


def require_labels(labels, dataset: str, *objs) -> None:
    """A prior with ``class_label: true`` needs the dataset's labels: fail before any solver runs."""
    for o in objs:
        if labels is None and getattr(o, "class_label", None) is True:
            raise InputError(f"datasets.{dataset}: the prior uses each image's class (class_label: true) "
                             f"but the dataset gives no labels (ImageNet: pass `labels:` or use synset "
                             f"folders, see data/imagenet.py), or set the prior's class_label to an int "
                             f"or none")


def hand_labels(labels, *objs) -> None:
    """Give each object that takes class labels (``set_labels``: a class-conditional prior with
    ``class_label: true``) the labels of the batch about to be solved (None when the dataset has
    none)."""
    for o in objs:
        if o is not None and hasattr(o, "set_labels"):
            o.set_labels(labels)


def _checkpoint_of(prior: dict):
    if prior["params"].get("path"):
        return Path(prior["params"]["path"])
    try:
        from dipbench.prefetch import checkpoint_path, load_registry

        reg = load_registry()
        return checkpoint_path(prior["name"], registry=reg) if prior["name"] in reg else None
    except Exception:  # noqa: BLE001 - no registry: nothing to add
        return None


def dataset_ids(e: dict, ds, dataset: str) -> list[str]:
    """The ids a dataset entry (``C.dataset_entry``) selects from the loader ``ds``: the tuning
    split's for `<dataset>.tune`, a seeded random subset with ``subset_seed``, else the first
    ``n_images``.  Shared by the measure step and the input fingerprints (dipbench/inputs.py)."""
    if e.get("split"):  # `<dataset>.tune`: the tuning split's images (dipbench/config.py, tuning split)
        return C.split_ids(e, ds.ids, dataset)
    if e.get("subset_seed") is not None:
        return random_subset(ds.ids, e["n_images"], e["subset_seed"], dataset, e["images"])
    return ds.subset(e["n_images"])


def load_images(cfg, dataset: str):
    """(ids, images); an unreadable image is named (id and file) with the dataset's fix hint."""
    import data

    e = C.dataset_entry(cfg, dataset)
    ds = data.build(e["images"], **e["params"])
    ids = dataset_ids(e, ds, dataset)
    try:
        return ids, ds.load(ids)
    except FileNotFoundError:
        raise  # the loader names the missing file and the fix
    except Exception as exc:  # noqa: BLE001 - find the culprit image and name it
        bad = None
        for i in ids:
            try:
                ds.load([i])
            except Exception:  # noqa: BLE001
                bad = i
                break
        path = ds.path(bad) if (bad is not None and hasattr(ds, "path")) else None
        fix = getattr(ds, "fix", "") or "Replace the file with an intact copy."
        raise InputError(f"datasets.{dataset} ({e['images']}): cannot read image {bad!r}"
                         f"{f' at {path}' if path else ''}: {type(exc).__name__}: {exc}. The file is "
                         f"probably truncated or corrupt; replace it. {fix}") from exc


def dataset_labels(cfg, dataset: str, ids):
    """Class labels (ints) of ``ids`` when the dataset has them (``labels(ids)``), else None."""
    import data

    e = C.dataset_entry(cfg, dataset)
    ds = data.build(e["images"], **e["params"])
    if not hasattr(ds, "labels"):
        return None
    try:
        return np.asarray(ds.labels(ids), dtype=np.int64)
    except (FileNotFoundError, LookupError, ValueError):
        return None  # no labels source: a prior that needs labels says so when it is called


def random_subset(ids, n, seed: int, dataset: str, images: str) -> list[str]:
    """``n`` ids drawn without replacement by a generator seeded from (images, 'subset', seed), kept in
    their dataset order (the MGPS paper's "50 randomly selected" images: which ones it drew is not
    published, so the draw is ours, recorded by its seed)."""
    ids = list(ids)
    n = len(ids) if n is None else int(n)
    if n > len(ids):
        raise ValueError(f"datasets.{dataset}: {n} images requested, the dataset has {len(ids)}")
    pick = torch.randperm(len(ids), generator=generator(images, "subset", seed))[:n]
    return [ids[i] for i in sorted(pick.tolist())]


def operator_for(meta: dict):
    import operators

    return operators.build(meta["operator"], tuple(meta["x_shape"]), **meta["operator_params"])


def load_measurement(meas_dir):
    meas_dir = Path(meas_dir)
    meta = read_json(meas_dir / "meta.json")
    z = np.load(meas_dir / "measurement.npz")
    out = {k: torch.from_numpy(z[k]) for k in ("x", "y") }
    out["x_map"] = torch.from_numpy(z["x_map"]) if "x_map" in z.files else None
    prefix = C.oracle_key(0).rsplit("_", 1)[0] + "_"
    out["oracle"] = {float(k[len(prefix):]): torch.from_numpy(z[k]) for k in z.files if k.startswith(prefix)}
    out["ids"] = [str(i) for i in z["ids"]]
    out["labels"] = torch.from_numpy(z["labels"]) if "labels" in z.files else None
    return meta, out


def peak_memory_mb(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    # In a job thread of the Snakemake process (local runs, force-use-threads) the peak resident
    # set belongs to the whole process: an upper bound shared with concurrent jobs, marked so.
    # A solve forked into a process of its own (dipbench/jobs.py: DIPBENCH_JOB_PROCESS) measures
    # its own peak; so does a job that is the main thread of its process (a cluster job).
    import os
    import threading

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if os.environ.get("DIPBENCH_JOB_PROCESS") == "1":
        return peak, "cpu_peak_rss_job_process"
    shared = threading.current_thread() is not threading.main_thread()
    return peak, "cpu_peak_rss_shared_process" if shared else "cpu_peak_rss"


def memory_baseline_mb():
    """The resident set the job's process started with (Python + torch), when it was measured."""
    import os

    v = os.environ.get("DIPBENCH_MEMORY_BASELINE_MB")
    return float(v) if v else None


# ---------------------------------------------------------------------------- measure
def measure(cfg, dataset: str, task: str, seed: int, out_dir) -> None:
    """y = A(x) + sigma_y * eps, eps from the generator seeded by (dataset, image-set, task, seed)."""
    C.import_plugins(cfg)
    out_dir = Path(out_dir)
    ids, x = load_images(cfg, dataset)
    want = C.dataset_entry(cfg, dataset).get("shape")
    if want and list(x.shape[1:]) != list(want):
        raise ValueError(f"datasets.{dataset}.shape is {list(want)} in the config but the images "
                         f"are {list(x.shape[1:])}: fix the config entry")
    te = C.task_entry(cfg, task)
    op, op_params = C.build_operator(te, tuple(x.shape[1:]), seed=stable_seed(dataset, task, seed, "operator"))
    with torch.no_grad():
        clean = op(x)
    g = generator(dataset, task, seed, "noise")
    y = clean + te["sigma_y"] * torch.randn(clean.shape, generator=g)
    arrays = dict(x=x.numpy(), y=y.numpy(), ids=np.array(ids))
    labels = dataset_labels(cfg, dataset, ids)
    if labels is not None:
        arrays["labels"] = labels
    oracle = oracle_inits(x, dataset, task, seed, C.oracle_sigmas(cfg))
    arrays.update({C.oracle_key(s_): v.numpy() for s_, v in oracle.items()})
    # No network is built here (a 256x256 prior would double the job's memory): whether the prior
    # is exact and whether it wants labels come from its registry entry (dipbench/inputs.py); only
    # an analytic prior (closed-form MAP, no checkpoint) is instantiated, for x_map.
    from . import inputs as I

    if labels is None and I.prior_wants_labels(cfg, dataset):
        require_labels(None, dataset, _WantsLabels())
    if I.prior_is_exact(cfg, dataset):
        prior = build_prior(cfg, dataset)
        if getattr(prior, "exact", False) and hasattr(prior, "map_estimate"):
            arrays["x_map"] = prior.map_estimate(y, op, te["sigma_y"]).float().numpy()
    meta = dict(dataset=dataset, task=task, seed=seed, operator=te["operator"], operator_params=op_params,
                sigma_y=te["sigma_y"], x_shape=list(x.shape[1:]), y_shape=list(op.y_shape),
                provides=sorted(op.provides), n_images=len(ids), exact_map="x_map" in arrays,
                task_entry=te, dataset_entry=C.dataset_entry(cfg, dataset), created=now(),
                images=I.image_provenance(cfg, dataset, ids))
    if oracle:  # ground-truth initialisations (oracle, see dipbench/config.py): recorded as such
        meta["oracle_init"] = dict(sigmas=sorted(oracle), key=C.oracle_key(0).rsplit("_", 1)[0] + "_<sigma>",
                                   rule="x_sigma = x0 + sigma * eta, eta from generator(dataset, task, seed, "
                                        "'oracle_init', sigma)")
    write_npz(out_dir / "measurement.npz", **arrays)
    write_json(out_dir / "meta.json", meta)


class _WantsLabels:
    class_label = True


def oracle_inits(x: torch.Tensor, dataset: str, task: str, seed: int, sigmas) -> dict:
    """{sigma: x0 + sigma * eta} for each requested sigma, eta from a generator seeded by (dataset,
    task, seed, 'oracle_init', sigma): the same draw for every solver that asks for that sigma."""
    out = {}
    for s_ in sigmas:
        g = generator(dataset, task, seed, "oracle_init", f"{float(s_):g}")
        out[float(s_)] = x + float(s_) * torch.randn(x.shape, generator=g)
    return out


# ---------------------------------------------------------------------------- solve
# Failure policy (see solve_or_record):
#   * a solver that returns NaN/inf (or values beyond +-DIVERGED_ABS) for an image -> that image is
#     `diverged`, the run goes on;
#   * a solver that raises (other than out-of-memory) -> the run is recorded `failed` (run.json with the
#     reason and traceback, NaN reconstructions), the job exits 0 so scoring, the leaderboard and
#     the tables still get built, and the failure counter beside the run dir is bumped: the solve
#     rule's params carry that counter, so the next `snakemake` sees changed params and re-runs
#     exactly the failed runs (and their scores);
#   * anything before the solver runs (missing/corrupt measurement, prior or checkpoint, no CUDA)
#     is an error of the environment, not a result: the job fails (non-zero, the error is noted in
#     the marker), Snakemake removes its outputs and retries it per `--retries`; with --keep-going
#     the rest of the grid goes on (the leaderboard waits until every run exists).
# Images live in [-1, 1]; a reconstruction with values beyond this bound has blown up (an unstable
# step size, e.g. MAP-GA(D) at sigma_y = 0.05) even when every value is still finite.
DIVERGED_ABS = 1e3


def divergence_reasons(out: torch.Tensor) -> list:
    """Per image of a batch: None if the reconstruction is usable, else why it counts as diverged
    (non-finite values, or values beyond +-DIVERGED_ABS)."""
    flat = out.reshape(out.shape[0], -1)
    finite = torch.isfinite(flat).all(1).tolist()
    peak = flat.nan_to_num(0.0, 0.0, 0.0).abs().amax(1).tolist() if flat.shape[1] else [0.0] * len(finite)
    return [None if ok and p <= DIVERGED_ABS else
            "non-finite values in the reconstruction" if not ok else
            f"values up to {p:.3g}, beyond +-{DIVERGED_ABS:g} (images are in [-1, 1]): blown up"
            for ok, p in zip(finite, peak)]


def failure_marker(run_dir) -> Path:
    """results/runs/{dataset}/{task}/{solver}/seed{N}.failed.json (beside the run dir, not an output)."""
    run_dir = Path(run_dir)
    return run_dir.parent / f"{run_dir.name}.failed.json"


def failure_count(run_dir) -> int:
    """How many times this run has failed so far (0 if never): the solve rule's retry token."""
    try:
        return int(read_json(failure_marker(run_dir)).get("failures", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def _bump_failures(run_dir, record_: dict) -> int:
    n = failure_count(run_dir) + 1
    write_json(failure_marker(run_dir), dict(record_, failures=n, resolved=False))
    return n


def _mark_resolved(run_dir) -> None:
    """Keep the counter (so the rule's params stay equal and a good run is not re-run)."""
    mk = failure_marker(run_dir)
    if mk.exists():
        try:
            rec = read_json(mk)
        except ValueError:
            return
        if not rec.get("resolved"):
            write_json(mk, dict(rec, resolved=True, resolved_at=now()))


class SolverFailed(Exception):
    """Raised inside solve() when the solver itself raised; carries what is needed to record it."""

    def __init__(self, exc, tb, partial):
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.exc, self.tb, self.partial = exc, tb, partial


def solve(cfg, dataset: str, task: str, solver: str, seed: int, meas_dir, run_dir, log=print) -> dict:
    """Solve every image of one (dataset, task, solver, seed); prior built once, images in batches.

    Errors before the solver runs propagate; an exception from the solver raises SolverFailed."""
    import solvers

    C.import_plugins(cfg)
    run_dir = Path(run_dir)
    device = resolve_device(cfg)
    entry = C.solver_entry(cfg, solver, task)  # params with this task's per_task overrides
    meta, m = load_measurement(meas_dir)
    started, t_start = now(), time.perf_counter()
    op = operator_for(meta).to(device)
    prior = build_prior(cfg, dataset).to(device)
    require_labels(m["labels"], dataset, prior)
    from priors.speed import apply as _speed  # GPU switches (config `speed`), off by default

    speed_notes = _speed(prior, cfg.get("speed"), device, log=log)
    load_s = time.perf_counter() - t_start  # operator + prior (checkpoint loading)
    batch = int(cfg.get("batch_size", 16))
    n = len(m["ids"])
    # the sigma_y the solver is told: the entry's override, else the measurement's (recorded both ways)
    told = float(entry["sigma_y"]) if entry.get("sigma_y") is not None else float(meta["sigma_y"])
    runs = int(entry["best_of"]["k"]) if entry.get("best_of") else 1
    init_sigma = float(entry["oracle_init"]["sigma"]) if entry.get("oracle_init") else None
    if init_sigma is not None and init_sigma not in m["oracle"]:
        raise InputError(f"{meas_dir}: the measurement has no x_sigma for sigma = {init_sigma:g} (oracle_init of "
                         f"solvers.{entry.get('sweep_of') or solver}); it was made before that entry was added: "
                         f"re-run the measure step (snakemake -R measure)")
    common = dict(dataset=dataset, task=task, solver=solver, solver_registry=entry["solver"], seed=seed,
                  sweep_of=entry.get("sweep_of"), n_images=n, batch_size=batch, device_kind=device,
                  measurement=str(meas_dir), sigma_y=float(meta["sigma_y"]), sigma_y_solver=told,
                  oracle=C.oracle_notes(entry), **({"speed": speed_notes} if speed_notes else {}),
                  config_hash=config_hash(dict(solver=entry, task=meta["task_entry"],
                                               dataset=meta["dataset_entry"], batch_size=batch, seed=seed)))
    for key in ("project", "best_of", "oracle_init"):
        if entry.get(key):
            common[key] = entry[key]
    recon = torch.full_like(m["x"], float("nan"))
    status, reasons, picked = [], {}, {}
    nfe = vjp = 0
    solve_s = 0.0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    try:
        alg = solvers.build(entry["solver"], **entry["params"])
        common["params"] = alg.params
        op.require(alg.needs)
        for start in range(0, n, batch):
            sl = slice(start, min(start + batch, n))
            y = m["y"][sl].to(device)
            hand_labels(None if m["labels"] is None else m["labels"][sl], prior)
            kw = {} if init_sigma is None else {"init": (m["oracle"][init_sigma][sl].to(device), init_sigma)}
            den = solvers.CountingDenoiser(prior)
            cands = []
            t0 = time.perf_counter()
            for j in range(runs):  # best_of: k runs from their own seeded streams (run 0 = the plain one)
                g = generator(dataset, task, solver, seed, f"batch{start}", *([f"run{j}"] if j else []),
                              device=device)
                out = alg.solve(y, op, den, told, g, **kw)
                if entry.get("project"):
                    from .projection import project

                    out = project(out.detach(), y, op)
                cands.append(out.detach())
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            solve_s += time.perf_counter() - t0
            cands = [c.float().cpu() for c in cands]
            if runs > 1:  # the oracle selection is bookkeeping, not solving: outside the timer
                out, choice = best_of_runs(cands, m["x"][sl], entry["best_of"].get("by", "psnr"),
                                           dict(y=m["y"][sl], x_map=None, sigma_y=meta["sigma_y"], meta=meta,
                                                run={}, cfg=cfg, ids=m["ids"][sl]))
                picked.update(zip(m["ids"][sl], choice))
            else:
                out = cands[0]
            recon[sl] = out
            nfe += den.nfe * (sl.stop - sl.start)
            vjp += den.vjp * (sl.stop - sl.start)
            for i, why in zip(m["ids"][sl], divergence_reasons(out)):
                status.append("ok" if why is None else "diverged")
                if why is not None:
                    reasons[i] = why
            log(f"[{dataset}/{task}/{solver}/seed{seed}] {sl.stop}/{n} images, "
                f"{solve_s:.1f}s solving, {den.nfe} NFE/{den.vjp} VJP per image")
        if picked:
            common["best_of_choice"] = picked
    except (torch.cuda.OutOfMemoryError, MemoryError):
        raise  # the machine's limit, not the method's: fail the job so Snakemake retries it
    except Exception as e:  # noqa: BLE001 - the solver's own failure is a result, recorded below
        partial = dict(common, start=started, t_start=t_start, recon=recon, ids=m["ids"], device=device,
                       solve_s=solve_s)
        raise SolverFailed(e, traceback.format_exc(), partial) from e
    mem, mem_kind = peak_memory_mb(device)
    ids = m["ids"]
    _write_recon(run_dir, recon, ids)
    info = dict(
        common, status="ok" if all(s == "ok" for s in status) else "diverged",
        images={i: s for i, s in zip(ids, status)}, reasons=reasons,
        wall_s=time.perf_counter() - t_start, load_s=load_s, solve_s=solve_s,
        wall_per_image_s=solve_s / max(n, 1),
        nfe_per_image=nfe / max(n, 1), vjp_per_image=vjp / max(n, 1),
        peak_memory_mb=mem, memory_kind=mem_kind, memory_baseline_mb=memory_baseline_mb(),
        previous_failures=failure_count(run_dir), start=started, end=now(), inputs=_run_inputs(cfg, dataset, meta, m["ids"]), **record(device))
    write_json(run_dir / "run.json", info)  # last: run.json present <=> the run is complete
    _mark_resolved(run_dir)
    return info


def _run_inputs(cfg, dataset, meta, ids) -> dict:
    """The files this run depends on (dipbench/inputs.py): every checkpoint with its sha256, and the
    image list (root, count, sha256 of the ids) as the measurement recorded it."""
    from . import inputs as I

    images = dict(meta.get("images") or {})
    images.setdefault("n", len(ids))
    images["ids_sha256"] = I.ids_digest(ids)
    return dict(checkpoints=I.checkpoint_provenance(cfg, dataset), images=images)


def best_of_runs(cands, truth, by: str, ctx) -> tuple:
    """Per image, the candidate with the best ``by`` score against the ground truth ``truth`` (the
    ``best_of`` oracle); non-finite candidates rank last.  Returns (images, chosen run index per image)."""
    import metrics

    met = metrics.build(by)
    hib = bool(met.higher_is_better)
    worst = -math.inf if hib else math.inf
    scores = []
    for c in cands:
        ok = torch.isfinite(c.reshape(len(c), -1)).all(1)
        v = np.asarray(met.per_image(torch.nan_to_num(c, 0.0, 0.0, 0.0).clamp(-1e3, 1e3), truth, ctx),
                       dtype=np.float64)
        v = np.where(ok.numpy() & np.isfinite(v), v, worst)
        scores.append(v)
    scores = np.stack(scores)                     # (k, B)
    choice = (scores.argmax(0) if hib else scores.argmin(0)).tolist()
    out = torch.stack([cands[j][i] for i, j in enumerate(choice)])
    return out, [int(j) for j in choice]


def _write_recon(run_dir, recon, ids) -> None:
    write_npz(run_dir / "recon.npz", recon=recon.numpy(), ids=np.array(ids))
    (run_dir / "recon").mkdir(parents=True, exist_ok=True)
    if len(recon.shape) == 4:
        for i, img in zip(ids, recon.numpy()):
            if np.isfinite(img).all():
                save_png(run_dir / "recon" / f"{i}.png", img)


def solve_or_record(cfg, dataset, task, solver, seed, meas_dir, run_dir, log=print) -> dict:
    """solve(); a solver exception is recorded as status `failed` (job succeeds, see the policy
    above); any other exception bumps the failure marker and is re-raised (the job fails)."""
    run_dir = Path(run_dir)
    try:
        return solve(cfg, dataset, task, solver, seed, meas_dir, run_dir, log)
    except SolverFailed as f:
        log(f.tb)
        p = f.partial
        reason = str(f)
        n_fail = _bump_failures(run_dir, dict(dataset=dataset, task=task, solver=solver, seed=seed,
                                              status="failed", reason=reason, traceback=f.tb, time=now()))
        _write_recon(run_dir, torch.full_like(p["recon"], float("nan")), p["ids"])
        mem, mem_kind = peak_memory_mb(p["device"])
        n = len(p["ids"])
        info = {k: v for k, v in p.items() if k not in ("recon", "ids", "t_start", "device")}
        info.setdefault("params", C.solver_entry(cfg, solver, task)["params"])
        info.update(status="failed", reason=reason, traceback=f.tb,
                    images={i: "failed" for i in p["ids"]}, reasons={i: reason for i in p["ids"]},
                    wall_s=time.perf_counter() - p["t_start"], wall_per_image_s=None,
                    nfe_per_image=None, vjp_per_image=None, peak_memory_mb=mem, memory_kind=mem_kind,
                    previous_failures=n_fail - 1, failures=n_fail, end=now(), **record(p["device"]))
        write_json(run_dir / "run.json", info)
        log(f"[{dataset}/{task}/{solver}/seed{seed}] FAILED ({reason}); recorded in {run_dir / 'run.json'}; "
            f"failure #{n_fail}: the next snakemake invocation re-runs it")
        return info
    except Exception as e:
        tb = traceback.format_exc()
        log(tb)
        # the job fails: Snakemake removes its outputs and re-runs it anyway (and retries it per
        # --retries), so the counter (the params token) is left alone -- bumping it would make
        # a successful retry in this same invocation run once more next time
        try:
            write_json(failure_marker(run_dir), dict(
                dataset=dataset, task=task, solver=solver, seed=seed, status="error",
                reason=f"{type(e).__name__}: {e}", traceback=tb, time=now(),
                failures=failure_count(run_dir), resolved=False))
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------- score
def score(cfg, meas_dir, run_dir) -> None:
    import metrics
    from metrics.base import MetricUnavailable

    C.import_plugins(cfg)
    run_dir = Path(run_dir)
    meta, m = load_measurement(meas_dir)
    run = read_json(run_dir / "run.json")
    z = np.load(run_dir / "recon.npz")
    recon = torch.from_numpy(z["recon"])
    # metrics see only the images with a finite reconstruction (diverged/failed ones get NaN:
    # no number is made up, and NaNs never reach a metric implementation)
    status = [run["images"][i] for i in m["ids"]]
    finite = torch.isfinite(recon.reshape(len(recon), -1)).all(1) if len(recon) else torch.zeros(0, dtype=bool)
    keep = torch.tensor([s == "ok" for s in status], dtype=torch.bool) & finite
    idx = torch.nonzero(keep).flatten()
    sub = lambda t: None if t is None else t[idx]  # noqa: E731
    ctx = dict(y=sub(m["y"]), x_map=sub(m["x_map"]), sigma_y=meta["sigma_y"], meta=meta, run=run, cfg=cfg,
               ids=[m["ids"][i] for i in idx.tolist()])
    cols, unavailable, per_set = {}, {}, {}
    names = [] if run["status"] == "failed" or len(idx) == 0 else list(cfg.get("metrics", []))
    for name in names:
        metric = metrics.build(name)
        try:
            if metric.kind == "per_set":
                per_set[name] = float(metric.per_set(recon[idx], m["x"][idx], ctx))
            else:
                vals = np.asarray(metric.per_image(recon[idx], m["x"][idx], ctx), dtype=np.float64)
                full = np.full(len(m["ids"]), np.nan)
                full[idx.numpy()] = vals
                cols[name] = full
        except MetricUnavailable as e:
            unavailable[name] = str(e)
    import pandas as pd

    df = pd.DataFrame({"image_id": m["ids"], "status": status, **cols})
    for name in per_set:
        df[name] = per_set[name]
    for name in [*unavailable, *(n for n in cfg.get("metrics", []) if n not in df)]:
        df[name] = math.nan
    bad = df["status"] != "ok"
    df.loc[bad, list(cols)] = math.nan
    write_csv(run_dir / "scores.csv", df)
    write_json(run_dir / "scores.json", dict(unavailable=unavailable, per_set=per_set,
                                               metrics=list(cfg.get("metrics", []))))


# ---------------------------------------------------------------------------- aggregate
def aggregate(cfg, run_dirs, out_csv, log=print):
    rows = [_leaderboard_row(cfg, rd) for rd in run_dirs]
    return _write_leaderboard(rows, out_csv, log)


def _leaderboard_row(cfg, rd) -> dict:
    import pandas as pd

    metric_names = list(cfg.get("metrics", []))
    rd = Path(rd)
    run = read_json(rd / "run.json")
    sc = pd.read_csv(rd / "scores.csv")
    extra = read_json(rd / "scores.json")
    row = dict(dataset=run["dataset"], task=run["task"], solver=run["solver"], seed=run["seed"],
               sweep_of=run.get("sweep_of"), status=run["status"],
               n_images=run["n_images"],
               # images without a finite reconstruction (diverged, or the whole run failed):
               # the tables mark such cells; n_failed tells the two apart
               n_diverged=int((sc["status"] != "ok").sum()), n_failed=int((sc["status"] == "failed").sum()),
               reason=run.get("reason", ""))
    for name in metric_names:
        row[name] = float(sc[name].mean()) if name in sc and sc[name].notna().any() else math.nan
    row["unavailable"] = "; ".join(f"{k}: {v}" for k, v in extra.get("unavailable", {}).items())
    # what the table footnotes need: the sigma_y the solver was told (when it differs from the
    # measurement's), the projection post-step and the oracle options (dipbench/config.py)
    row.update(sigma_y=run.get("sigma_y"), sigma_y_solver=run.get("sigma_y_solver"),
               project=bool(run.get("project", False)), oracle="; ".join(run.get("oracle") or []))
    row.update(wall_per_image_s=run["wall_per_image_s"], nfe_per_image=run["nfe_per_image"],
               vjp_per_image=run["vjp_per_image"], peak_memory_mb=run["peak_memory_mb"],
               memory_kind=run["memory_kind"], device=run["device"], config_hash=run["config_hash"],
               git_commit=(run.get("git") or {}).get("commit"), git_dirty=(run.get("git") or {}).get("dirty"),
               run_dir=str(rd))
    return row


def _write_leaderboard(rows, out_csv, log=print):
    import pandas as pd

    df = pd.DataFrame(rows).sort_values(["dataset", "task", "solver", "seed"]).reset_index(drop=True)
    write_csv(out_csv, df)
    bad = df[df["status"] != "ok"]
    for _, r in bad.iterrows():
        log(f"{r['status']}: {r['dataset']}/{r['task']}/{r['solver']}/seed{r['seed']}"
            + (f" ({r['reason']})" if r["status"] == "failed" else f" ({r['n_diverged']} image(s))"))
    log(f"leaderboard: {len(df)} runs, {int((df['status'] == 'failed').sum())} failed, "
        f"{int((df['status'] == 'diverged').sum())} with diverged images -> {out_csv}")
    return df


# ---------------------------------------------------------------------------- partial results
def missing_row(cfg, run_dir, reason: str) -> dict:
    """A leaderboard row for a run that has no result (its measure or solve job failed): status
    `failed`, metrics NaN, the reason."""
    parts = Path(run_dir).parts
    dataset, task, solver, seed = parts[-4], parts[-3], parts[-2], int(parts[-1].removeprefix("seed"))
    row = dict(dataset=dataset, task=task, solver=solver, seed=seed,
               sweep_of=C.solver_entries(cfg).get(solver, {}).get("sweep_of"), status="failed",
               n_images=C.dataset_entry(cfg, dataset).get("n_images"), n_diverged=0, n_failed=0,
               reason=reason)
    for name in cfg.get("metrics", []):
        row[name] = math.nan
    row.update(unavailable="", run_dir=str(run_dir), peak_memory_mb=math.nan, memory_kind="",
               wall_per_image_s=math.nan, nfe_per_image=math.nan, vjp_per_image=math.nan)
    return row


def aggregate_partial(cfg, run_dirs, out_csv, why, log=print):
    """The leaderboard of what exists after a failed run (``snakemake --keep-going``): complete runs
    as usual, the others as `failed` rows whose reason ``why(run_dir)`` gives."""
    rows = []
    for rd in map(Path, run_dirs):
        if (rd / "run.json").exists() and (rd / "scores.csv").exists() and (rd / "scores.json").exists():
            try:
                rows.append(_leaderboard_row(cfg, rd))
                continue
            except Exception as e:  # noqa: BLE001 - an unreadable result is a missing one
                rows.append(missing_row(cfg, rd, f"unreadable result: {type(e).__name__}: {e}"))
                continue
        rows.append(missing_row(cfg, rd, why(rd)))
    return _write_leaderboard(rows, out_csv, log) if rows else None
