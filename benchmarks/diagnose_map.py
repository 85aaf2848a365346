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

Findings (issue 14 item 8; 2-core CPU, OMP_NUM_THREADS=1, seed 0, default config budgets;
PSNR per image, "residual" = ||H x - y|| / sqrt(m), sigma_y = 0.05):

1. VML-MAP / VML-MAP_pre turn the blue night sky grey and leave a red blob (U-Net, SR x2 and
   deblurring).  Reproduced on rocket_thumb / rocket_c128a.  Per level, the residual falls to
   0.048 at sigma = 0.2 and then *rises* over the levels below sigma_y, to 0.152 at sigma = 0.002
   (SR), while the mean blue channel goes from the truth's -0.29 / -0.23 to -0.47 / -0.45; the
   gradient norm at the last level is 2e4 and does not fall within the level.  Same images on the
   fitted Gaussian: the residual stays at 0.033 from sigma = 0.045 down, colours exact, PSNR = the
   exact MAP's (26.85 / 32.46 vs 26.87 / 32.65).  Cause: below sigma_y the step
   eta = 1 / (||H||^2 / sy^2 + 1 / (4 s^2)) ~ 4 s^2 gives the data term a weight
   eta ||H||^2 / sy^2 -> 0, and each step moves x by ~4 J^T (x - D), i.e. follows the network's
   own estimate at level s; the embedded U-Net is barely trained there (EDM's log-normal
   training levels put < 1 % of the mass below 0.018; its denoising MSE at sigma = 0.002 is
   5.8e-6, 1.45x the identity's 4e-6, with a systematic colour shift of ~1e-3 per call on the
   rocket image).  Not the budget: K = 50 (the paper's) instead of 10 is worse (PSNR 15.0 / 15.1,
   final residual 0.35).  Not the step rule of the exact problem: the same rule is exact on the
   Gaussian.  Ending the grid at sigma_min = 0.05 (= sigma_y): SR 25.15 / 31.63 (0.02: 23.5 / 28.4,
   0.01: 22.0 / 23.8, 0.002: 21.1 / 23.0), deblurring 26.13 / 33.02 (0.002: 22.67 / 24.95),
   VML-MAP_pre the same to 0.1 dB; SR on all 8 images mean 26.47 vs 23.35 (exact-MAP PSNR on the
   Gaussian: 26.41).  On the Gaussian the levels below 0.05 add nothing (8-image means: SR 26.36
   vs 26.35, deblur 24.02 vs 24.06, inpainting 19.16 vs 19.05).  Fix: config/default.yaml ends
   the VML-MAP grids at 0.05.  Commands:
     python -m benchmarks.diagnose_map --prior edm_unet --tasks sr_x2,deblur_uniform
     python -m benchmarks.diagnose_map --prior edm_unet --tasks sr_x2 --params '{"sigma_min": 0.05}'
     python -m benchmarks.diagnose_map --prior gaussian_fit --tasks sr_x2,deblur_uniform --images ""

2. The old ``map_ga_pgdm`` (MAP-GA(D) with its prior term, lr_scale 0.0016, then 50 PGDM steps)
   fills the masked half with flat grey noise.  Per level, the residual on the observed half stays
   at 0.43-0.51 through all 20 MAP-GA levels (sigma_y 0.05): with lambda = 0.0016 (sy^2 + eps^2)
   the data step is 0.16 % per iteration, so the MAP-GA part never sees the data; its denoiser
   chain (D of a renoised D) settles near the mean image, and PGDM's 50 steps from sigma = 0.05
   can fit the observed half but cannot create the missing one: masked-half std 0.07-0.12 against
   the truth's 0.18-0.59, mean PSNR 17.07.  The same happens on the fitted Gaussian (mean PSNR
   15.98 against the exact MAP's 19.99), so it is the setting, not the network; moving the prior
   term's level to sigma_eps = 0.02 changes nothing (masked std 0.07-0.12).  Algorithm 3 as the
   paper gives it (no prior term, so lr_scale 1 is stable; m = 20), now ``map_ga_d_pgdm``: the
   residual falls to 0.017 at sigma = 0.05, the masked half gets structure (std 0.15-0.53),
   mean PSNR 19.52 on the U-Net and 18.76 on the Gaussian; with the exact consistency map
   (``map_ga_pgdm`` on the Gaussian) 17.09, a posterior-sample-like fill (masked std 0.28-0.48).
   What stays is the method: with the denoiser in place of the consistency model the MAP-GA
   chain shrinks prior-only directions towards the mean (tests/test_map_ga.py measures it).
     python -m benchmarks.diagnose_map --prior edm_unet --tasks inpaint_half --images "" \
         --solvers map_ga_d_pgdm --params '{"prior_term": true, "pgdm_steps": 50, "lr_scale": 0.0016}'
     python -m benchmarks.diagnose_map --prior edm_unet --tasks inpaint_half --images "" --solvers map_ga_d_pgdm
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

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


def rel_dist(a, b):
    b = b.reshape(b.shape[0], -1)
    return (a.reshape(a.shape[0], -1) - b).norm(dim=1) / b.norm(dim=1)


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
            dist = "" if xm is None else (
                f", relative distance to the MAP "
                f"{[round(float(v), 3) for v in rel_dist(out, xm)]}")
            print(f"    PSNR {psnr(out, x)}{dist}")
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
