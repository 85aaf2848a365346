"""Per-level diagnosis of the MAP solvers on a few images of the default benchmark.

    python -m benchmarks.diagnose_map [--prior edm_unet] [--tasks sr_x2,deblur_uniform]
        [--solvers vml_map,vml_map_pre] [--images rocket_thumb,rocket_c128a] [--params '{"iters": 10}']
        [--seed 0] [--png results/benchmarks/diagnose_map]

Rebuilds the default benchmark's measurements (config/default.yaml: the same operators, sigma_y,
and the measurement noise seeded exactly as the pipeline seeds it, so an image's y is the one the
default run used) and runs the chosen solvers on the chosen images only, with the solvers' own
per-level trace: VML-MAP / VML-MAP_pre print the step eta, the data residual ||H D - y|| / sqrt(m)
(compare with sigma_y), the loss's data and denoising parts, the first and last gradient norms of
the level and the range of D; MAP-GA prints the residual and the range of x.  After each run: PSNR
against the ground truth and the exact MAP (when the prior is exact), the mean colour of the output
against the truth's, and for inpainting the masked half's mean and spread.  ``--png`` writes a
grid (rows: truth, measurement, one row per solver) per task.

The default solver parameters are the default config's; ``--params`` overrides (JSON) apply to
every solver.  Use ``--prior gaussian_fit`` to run the same images on the fitted Gaussian prior,
where the exact MAP is known.  Solver names: any registered one (``python -c "import solvers;
print(solvers.names())"``); consistency-model solvers need a prior with a consistency map (the
Gaussian priors have one).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

import operators
import priors
import solvers
from dipbench.paths import ROOT
from dipbench.seeding import generator

DATASET = {"gaussian_fit": "skimage32_gauss", "edm_unet": "skimage32_unet"}


def default_config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "config" / "default.yaml").read_text())


def measurement(cfg, prior_name: str, task: str, seed: int, ids):
    """(x, y, op, sigma_y, all ids) exactly as the pipeline's measure step makes them."""
    import data
    from dipbench import config as C

    dataset = DATASET.get(prior_name, prior_name)
    if dataset not in cfg["datasets"]:
        dataset = next(iter(cfg["datasets"]))
    de = C.dataset_entry(cfg, dataset)
    ds = data.build(de["images"], **de["params"])
    all_ids = ds.subset(de["n_images"])
    x = ds.load(all_ids)
    te = C.task_entry(cfg, task)
    from dipbench.seeding import stable_seed
    op, _ = C.build_operator(te, tuple(x.shape[1:]), seed=stable_seed(dataset, task, seed, "operator"))
    with torch.no_grad():
        clean = op(x)
    g = generator(dataset, task, seed, "noise")
    y = clean + te["sigma_y"] * torch.randn(clean.shape, generator=g)
    idx = [all_ids.index(i) for i in ids] if ids else list(range(len(all_ids)))
    return x[idx], y[idx], op, te["sigma_y"], [all_ids[i] for i in idx]


def psnr(a, b) -> list:
    mse = ((a.clamp(-1, 1) - b) ** 2).reshape(a.shape[0], -1).mean(1)
    return [round(float(10 * math.log10(4.0 / max(m, 1e-12))), 2) for m in mse]


def run_one(name, params, y, op, prior, sy, seed):
    trace: list = []
    alg = solvers.build(name, **params)
    kw = {"trace": trace} if "trace" in alg.solve.__code__.co_varnames else {}
    out = alg.solve(y, op, prior, sy, torch.Generator().manual_seed(seed), **kw)
    return out, trace


def print_trace(trace):
    if not trace:
        print("    (no per-level trace for this solver)")
        return
    keys = list(trace[0])
    print("    " + " ".join(f"{k:>12}" for k in keys))
    for row in trace:
        print("    " + " ".join(f"{row[k]:12.4g}" for k in keys))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prior", default="edm_unet")
    ap.add_argument("--tasks", default="sr_x2,deblur_uniform")
    ap.add_argument("--solvers", default="vml_map,vml_map_pre")
    ap.add_argument("--images", default="rocket_thumb,rocket_c128a")
    ap.add_argument("--params", default="{}", help="JSON overrides applied to every solver")
    ap.add_argument("--seed", type=int, default=0, help="measurement seed (the config's seeds)")
    ap.add_argument("--solver-seed", type=int, default=0)
    ap.add_argument("--png", default=None, help="folder for one image grid per task")
    args = ap.parse_args(argv)
    cfg = default_config()
    prior = priors.build(args.prior)
    over = json.loads(args.params)
    ids = [i for i in args.images.split(",") if i]
    for task in args.tasks.split(","):
        x, y, op, sy, ids_ = measurement(cfg, args.prior, task, args.seed, ids)
        xm = prior.map_estimate(y, op, sy) if getattr(prior, "exact", False) else None
        print(f"== {task} (sigma_y {sy}), prior {args.prior}, images {ids_}")
        if xm is not None:
            print(f"  exact MAP: PSNR {psnr(xm, x)}")
        rows = [x, op.to_image(y) if op.to_image(y) is not None else torch.zeros_like(x)]
        for name in args.solvers.split(","):
            entry = (cfg["solvers"].get(name) or {}) if name in cfg["solvers"] else {}
            params = {**dict(entry.get("params", {}) or {}), **over}
            out, trace = run_one(entry.get("solver", name), params, y, op, prior, sy, args.solver_seed)
            print(f"  -- {name} {params}")
            print_trace(trace)
            print(f"    PSNR {psnr(out, x)}" + (f", relative distance to the MAP "
                  f"{[round(float(v), 3) for v in ((out - xm).reshape(len(ids_), -1).norm(dim=1) / xm.reshape(len(ids_), -1).norm(dim=1))]}"
                  if xm is not None else ""))
            print(f"    mean colour out {[[round(float(c), 2) for c in im.mean((1, 2))] for im in out]}"
                  f" truth {[[round(float(c), 2) for c in im.mean((1, 2))] for im in x]}")
            if task.startswith("inpaint"):
                keep = (op.adjoint(torch.ones((1,) + op.y_shape)) > 0.5).expand_as(out)
                hole = out[~keep].reshape(out.shape[0], -1)
                print(f"    masked part: mean {[round(float(v), 3) for v in hole.mean(1)]} std "
                      f"{[round(float(v), 3) for v in hole.std(1)]} (truth std "
                      f"{[round(float(v), 3) for v in x[~keep].reshape(x.shape[0], -1).std(1)]})")
            rows.append(out)
        if args.png:
            from torchvision.utils import save_image
            Path(args.png).mkdir(parents=True, exist_ok=True)
            grid = torch.cat(rows).clamp(-1, 1) * 0.5 + 0.5
            f = Path(args.png) / f"{args.prior}_{task}.png"
            save_image(grid, f, nrow=len(ids_))
            print(f"  grid (rows: truth, y, {args.solvers}) -> {f}")


if __name__ == "__main__":
    main()
