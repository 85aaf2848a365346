"""MGPS Table 1 style experiment: 25-component Gaussian-mixture prior, exact posterior, sliced W.

Setup (MGPS `gmm_25` / `generate_linear_inverse_problem`, whose driver for Table 1 is not
public): means (8i, 8j), i, j in {-2..2}, tiled to dimension d; identity covariances; weights
uniform(0, 1) normalised; per replicate a random A ~ N(0, 1) of shape (d_y, d) (d_y = 1 by default,
MGPS's default), x* ~ prior, y = A x* + sigma_y n.  sigma_y is fixed (default 0.5; MCGdiff draws
it at random per problem, MGPS's Table 1 value is not in the repository).  Every sampler draws
``--samples`` posterior samples (one batch of copies of y); the score is the sliced Wasserstein-1
distance (100 random unit directions, seeded) to as many exact posterior samples; the "prior" row
is prior samples scored the same way (the reference a sampler has to beat) and "posterior" is a
second set of exact posterior samples (the Monte-Carlo floor).  Mean and a 95% confidence interval
(t-distribution) over R replicates, all seeded by name (``dipbench.seeding``).

Solver settings: the defaults of each method, except where a default is tied to images and makes
no sense on the toy: DPS and DiffPIR without the [-1, 1] clip; DAPS with the exact likelihood (tau = sqrt(2)
sigma_y instead of 0.01) and lr 1e-3; MGPS with its GMM context (lr 0.1, K rule 2/20/20, no warm start);
VML-MAP with its defaults (a MAP method: its samples collapse near modes, scored all the same);
MAP-GA with its step scaled by 1 / ||A||^2 (its step assumes ||A|| <= 1, as for image operators).
``--quick`` uses reduced step counts (listed in QUICK) so the whole run takes < 3 min on 2 CPUs.

    python benchmarks/gmm_table.py --quick --out results/gmm_table_quick.csv
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import operators  # noqa: E402
import priors  # noqa: E402
import solvers  # noqa: E402
from dipbench.seeding import generator  # noqa: E402
from dipbench.sliced_wasserstein import sliced_wasserstein  # noqa: E402

GMM_OVERRIDES = {
    "dps": dict(clip=False),
    "diffpir": dict(clip=False),
    "daps_1k": dict(tau=None, lr=1e-3),
    "daps_4k": dict(tau=None, lr=1e-3),
    "mgps": dict(lr=0.1, grad_steps_first=20, grad_steps_every=20, warm_threshold=2000),
}
FULL = {name: dict(GMM_OVERRIDES.get(name, {})) for name in
        ["vml_map", "vml_map_pre", "map_ga_d", "ddrm", "pgdm", "gdm", "dps", "daps_1k", "daps_4k", "mgps", "ddnm", "diffpir", "reddiff"]}
QUICK = {
    "vml_map": dict(steps=10, iters=20),
    "vml_map_pre": dict(steps=10, iters=20),
    "map_ga_d": dict(steps=10, iters=20),
    "ddrm": dict(steps=20),
    "pgdm": dict(steps=200),
    "gdm": dict(steps=200),
    "dps": dict(steps=200, clip=False),
    "daps_1k": dict(annealing_steps=50, ode_steps=5, langevin_steps=50, tau=None, lr=1e-3),
    "daps_4k": dict(annealing_steps=50, ode_steps=20, langevin_steps=50, tau=None, lr=1e-3),
    "mgps": dict(steps=100, lr=0.1, grad_steps_first=20, grad_steps_every=20, warm_threshold=2000),
    "ddnm": dict(steps=100),
    "diffpir": dict(steps=100, clip=False),
    "reddiff": dict(steps=50),
}


def gmm25(dim: int, gen: torch.Generator):
    """MGPS's 25-component mixture in dimension ``dim`` (even)."""
    if dim % 2:
        raise ValueError("dim must be even (the 2-D means are tiled)")
    grid = torch.tensor([(8.0 * i, 8.0 * j) for i in range(-2, 3) for j in range(-2, 3)])
    means = grid.repeat(1, dim // 2)
    w = torch.rand(25, generator=gen, dtype=torch.float64)
    return priors.build("gmm", weights=w / w.sum(), means=means, covs=torch.eye(dim, dtype=torch.float64))


def gmm_problem(dim: int, d_y: int, sigma_y: float, rep: int, tag: str = "gmm_table"):
    """(prior, op, y, x_star) for one seeded replicate."""
    g = generator(tag, dim, d_y, sigma_y, rep)
    prior = gmm25(dim, g)
    A = torch.randn(d_y, dim, generator=g, dtype=torch.float64)
    op = operators.build("matrix", shape=(dim,), matrix=A)
    x = prior.sample(1, g)
    y = op(x) + sigma_y * torch.randn((1, d_y), generator=g)
    return prior, op, y, x


def run_sampler(name, params, prior, op, y, sigma_y, n, gen):
    if name.startswith("map_ga") and "lr_scale" not in params:
        # MAP-GA's step (lambda = sy^2 + s_eps^2) is stable for ||A|| <= 1, true of the image
        # operators; a random Gaussian A has ||A||^2 ~ d: scale the step by 1 / ||A||^2
        params = dict(params, lr_scale=min(1.0, 1.0 / op.norm_sq()))
    alg = solvers.build(name, **params)
    return alg.solve(y.expand(n, -1).clone(), op, prior, sigma_y, gen)


def ci95(v):
    v = torch.tensor(v, dtype=torch.float64)
    if v.numel() < 2:
        return float(v.mean()), float("nan")
    from scipy.stats import t
    return float(v.mean()), float(t.ppf(0.975, v.numel() - 1) * v.std() / math.sqrt(v.numel()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced steps, d in {10, 40}, 5 replicates")
    ap.add_argument("--dims", type=int, nargs="+", default=None)
    ap.add_argument("--dy", type=int, default=1)
    ap.add_argument("--sigma-y", type=float, default=0.5)
    ap.add_argument("--replicates", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--solvers", nargs="+", default=None)
    ap.add_argument("--out", default=None, help="CSV path (one row per solver x dim x replicate)")
    ap.add_argument("--md", default=None, help="also write the printed Markdown table here")
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else FULL
    dims = a.dims or ([10, 40] if a.quick else [10, 40, 100])
    reps = a.replicates or (5 if a.quick else 20)
    n = a.samples or (500 if a.quick else 2000)
    names = a.solvers or list(cfg)
    rows, table = [], {}
    t_all = time.time()
    for dim in dims:
        for rep in range(reps):
            prior, op, y, _ = gmm_problem(dim, a.dy, a.sigma_y, rep)
            ref = prior.sample_posterior(y, op, a.sigma_y, n, generator("gmm_ref", dim, rep))[0]
            sw_gen = lambda: generator("gmm_sw", dim, rep)  # noqa: E731  same slices for every row
            extra = {"prior": prior.sample(n, generator("gmm_prior", dim, rep)),
                     "posterior": prior.sample_posterior(y, op, a.sigma_y, n, generator("gmm_post2", dim, rep))[0]}
            for name in names + list(extra):
                t0 = time.time()
                if name in extra:
                    xs = extra[name]
                else:
                    xs = run_sampler(name, cfg[name], prior, op, y, a.sigma_y, n,
                                     generator("gmm_solver", name, dim, rep))
                wall = time.time() - t0
                finite = bool(torch.isfinite(xs).all())
                sw = sliced_wasserstein(xs, ref, a.slices, sw_gen()) if finite else float("nan")
                rows.append(dict(solver=name, dim=dim, d_y=a.dy, sigma_y=a.sigma_y, replicate=rep,
                                 samples=n, sw=sw, wall_s=round(wall, 3), finite=finite))
                table.setdefault((name, dim), []).append(sw)
            print(f"gmm_table: d = {dim}, replicate {rep + 1}/{reps} done ({time.time() - t_all:.0f}s)",
                  file=sys.stderr, flush=True)
    order = names + ["prior", "posterior"]
    lines = [f"GMM-25 toy, d_y = {a.dy}, sigma_y = {a.sigma_y}, {reps} replicates, {n} samples, "
             f"sliced W1 ({a.slices} slices) to exact posterior samples: mean ± 95% CI"
             f"{' (quick mode)' if a.quick else ''}", "",
             "| solver | " + " | ".join(f"d = {d}" for d in dims) + " |",
             "|---|" + "---|" * len(dims)]
    for name in order:
        cells = []
        for d in dims:
            vals = [v for v in table[(name, d)] if math.isfinite(v)]
            bad = len(table[(name, d)]) - len(vals)
            m, h = ci95(vals) if vals else (float("nan"), float("nan"))
            cells.append(f"{m:.3f} ± {h:.3f}" + (f" ({bad} non-finite)" if bad else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n" + "\n".join(lines))
    if a.md:
        os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
        with open(a.md, "w") as f:
            f.write("\n".join(lines) + "\n")
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"\nwrote {a.out}")
    return rows


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    main()
