"""Convergence of the MAP solvers to the exact MAP on Gaussian priors.

    python -m benchmarks.map_convergence [--quick] [--out-dir results/benchmarks/map_convergence]

For each prior (a random one, eigenvalues 3e-4..0.3 with a random Kronecker-structured orthogonal
basis, and a smooth stationary one), task (inpaint_half, sr_block x2, sr_block x4,
deblur_uniform) and MAP solver, runs N = ``--levels`` levels with K inner steps for several K
and prints the relative distance ||x_hat - x_MAP|| / ||x_MAP|| (mean and max over the batch)
against the total number of steps N*K.  Writes ``map_convergence.csv`` and ``map_convergence.png``
to --out-dir.  ``--quick`` (3x16x16, fewer K, under 3 minutes on 2 CPU cores) is the CI setting.

The priors are Gaussian priors whose eigenbasis is a Kronecker product Q_c x Q_h x Q_w, so the
exact denoiser costs O(n (C + H + W)) per image instead of O(n^2); the exact MAP is computed by
conjugate gradients in whitened coordinates (relative residual 1e-7; agreement with
``GaussianPrior.map_estimate`` is checked in tests/test_map_solvers.py).  They are
``priors.gaussian.GaussianPrior`` subclasses, so every exact helper still works.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch

from dipbench.cg import batched_cg
from priors.gaussian import GaussianPrior


# --- Kronecker-structured Gaussian priors --------------------------------------------------
def haar(n: int, g: torch.Generator) -> torch.Tensor:
    """A Haar-random n x n orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class KronGaussian(GaussianPrior):
    """N(mu, Q diag(lam) Q^T) on (C, H, W) images with Q = Q_c x Q_h x Q_w (Kronecker product)."""

    def __init__(self, mean, factors, lam):
        self.shape = tuple(lam.shape)
        self.n = lam.numel()
        self.factors64 = [f.double() for f in factors]
        self.fac = [f.float() for f in factors]
        self.mu64 = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        self.lam_grid64 = lam.double()
        self.lam64 = self.lam_grid64.reshape(-1)
        self.mu, self.lam, self.lam_grid = self.mu64.float(), self.lam64.float(), lam.float()
        self._cache: dict = {}
        self._q64 = None

    @property
    def Q64(self):  # dense basis, built only when a generic exact helper needs it
        if self._q64 is None:
            a, b, c = self.factors64
            self._q64 = torch.kron(a, torch.kron(b, c))
        return self._q64

    @property
    def Q(self):
        return self.Q64.float()

    @staticmethod
    def to_eig(x, fac):
        a, b, c = fac
        return torch.einsum("bchw,ci,hj,wk->bijk", x, a, b, c)

    @staticmethod
    def from_eig_coef(z, fac):
        a, b, c = fac
        return torch.einsum("bijk,ci,hj,wk->bchw", z, a, b, c)

    def denoise(self, x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        mu = self.mu.reshape((1,) + self.shape)
        z = self.to_eig(x - mu, self.fac) * (self.lam_grid / (self.lam_grid + s ** 2))
        return mu + self.from_eig_coef(z, self.fac)

    def sample(self, n, generator):
        xi = torch.randn((n,) + self.shape, generator=generator, dtype=torch.float64)
        x = self.mu64.reshape((1,) + self.shape) + self.from_eig_coef(xi * self.lam_grid64.sqrt(),
                                                                      self.factors64)
        return x.float()

    def cg_map(self, y, op, sigma_y, tol=1e-7, maxiter=5000):
        """Exact MAP by CG on (I + L^T H^T H L / sy^2) u = L^T H^T (y - H mu) / sy^2, x = mu + L u."""
        f, sq = self.factors64, self.lam_grid64.sqrt()
        sy2 = float(sigma_y) ** 2
        mu = self.mu64.reshape((1,) + self.shape)
        L = lambda u: self.from_eig_coef(u * sq, f)                                   # noqa: E731
        Lt = lambda x: self.to_eig(x, f) * sq                                         # noqa: E731
        HtH = lambda x: op.adjoint(op(x.float())).double()                            # noqa: E731
        A = lambda u: u + Lt(HtH(L(u))) / sy2                                         # noqa: E731
        r0 = op.adjoint(y.float() - op(mu.float().expand(y.shape[0], *self.shape))).double()
        u = batched_cg(A, Lt(r0) / sy2, maxiter, tol)
        return (mu + L(u)).float()


def random_kron(shape=(3, 32, 32), lo=3e-4, hi=0.3, seed=0, mean_scale=0.1):
    """Log-spaced eigenvalues in [lo, hi], placed in random order on a random Kronecker basis."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    fac = [haar(c, g), haar(h, g), haar(w, g)]
    n = c * h * w
    lam = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    lam = lam[torch.randperm(n, generator=g)].reshape(shape)
    mu = mean_scale * torch.randn(n, generator=g, dtype=torch.float64)
    return KronGaussian(mu, fac, lam), g


def smooth_kron(shape=(3, 32, 32), length=3.0, var=0.25, nugget=1e-4, seed=0):
    """Stationary, natural-image-like: covariance var * C_rgb x exp(-|dy|/l) x exp(-|dx|/l) + nugget I
    (correlation decaying with pixel distance, correlated colour channels)."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    rgb = torch.tensor([[1.0, 0.8, 0.7], [0.8, 1.0, 0.8], [0.7, 0.8, 1.0]], dtype=torch.float64)
    mats = [rgb[:c, :c] * var]
    for m in (h, w):
        i = torch.arange(m, dtype=torch.float64)
        mats.append(torch.exp(-(i[:, None] - i[None, :]).abs() / length))
    evs, fac = zip(*[torch.linalg.eigh(mm) for mm in mats])
    evs = [e.clamp_min(0) for e in evs]
    lam = evs[0][:, None, None] * evs[1][None, :, None] * evs[2][None, None, :] + nugget
    return KronGaussian(torch.zeros(c * h * w, dtype=torch.float64), list(fac), lam), g


PRIORS = {"random": random_kron, "smooth": smooth_kron}
TASKS = {"inpaint_half": ("inpaint_half", {}), "sr_x2": ("sr_block", {"factor": 2}),
         "sr_x4": ("sr_block", {"factor": 4}), "deblur_uniform": ("deblur_uniform", {})}


def rel_err(xh, xm):
    b = xm.shape[0]
    return ((xh - xm).reshape(b, -1).norm(dim=1) / xm.reshape(b, -1).norm(dim=1))


def run(args):
    import operators
    import solvers

    torch.set_num_threads(args.threads)
    shape = (3, 16, 16) if args.quick else (3, 32, 32)
    iters = [2, 5, 10, 25, 50] if args.quick else [2, 5, 10, 25, 50, 100]
    names = args.solvers.split(",")
    rows = []
    for pname in args.priors.split(","):
        prior, g = PRIORS[pname](shape)
        x = prior.sample(args.batch, g)
        for tname in args.tasks.split(","):
            opname, params = TASKS[tname]
            op = operators.build(opname, shape, **params)
            y = op(x) + args.sigma_y * torch.randn((args.batch,) + op.y_shape, generator=g)
            xm = prior.cg_map(y, op, args.sigma_y)
            for name in names:
                for k in iters:
                    den = solvers.CountingDenoiser(prior)
                    t0 = time.time()
                    xh = solvers.build(name, steps=args.levels, iters=k).solve(
                        y, op, den, args.sigma_y, torch.Generator().manual_seed(args.seed))
                    e = rel_err(xh, xm)
                    row = dict(prior=pname, task=tname, solver=name, sigma_y=args.sigma_y,
                               steps=args.levels, iters=k, total_steps=args.levels * k,
                               nfe=den.nfe, vjp=den.vjp, rel_err_mean=float(e.mean()),
                               rel_err_max=float(e.max()), wall_s=round(time.time() - t0, 3))
                    rows.append(row)
                    print(f"{pname:7s} {tname:15s} {name:12s} N={args.levels:4d} K={k:4d} "
                          f"steps={args.levels * k:6d} rel_err={row['rel_err_mean']:.4f}", flush=True)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "map_convergence.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, out / "map_convergence.png")
    return rows


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pri = sorted({r["prior"] for r in rows})
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(len(pri), len(tasks), figsize=(3.2 * len(tasks), 2.8 * len(pri)),
                             squeeze=False)
    for i, p in enumerate(pri):
        for j, t in enumerate(tasks):
            ax = axes[i, j]
            for s in dict.fromkeys(r["solver"] for r in rows):
                pts = [(r["total_steps"], r["rel_err_mean"]) for r in rows
                       if r["prior"] == p and r["task"] == t and r["solver"] == s
                       and math.isfinite(r["rel_err_mean"])]
                if pts:
                    ax.loglog(*zip(*pts), marker="o", ms=3, label=s)
            ax.set_title(f"{p} / {t}", fontsize=9)
            ax.set_xlabel("steps N*K", fontsize=8)
            if j == 0:
                ax.set_ylabel("||x - x_MAP|| / ||x_MAP||", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out-dir", default="results/benchmarks/map_convergence")
    ap.add_argument("--solvers", default="vml_map,vml_map_pre,map_ga_d,map_ga_d_np,map_ga_d_pgdm")
    ap.add_argument("--priors", default="random,smooth")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--sigma-y", type=float, default=0.05)
    ap.add_argument("--levels", type=int, default=20)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.quick and "--solvers" not in (argv or __import__("sys").argv):
        args.solvers = "vml_map,vml_map_pre,map_ga_d_np"
    run(args)


if __name__ == "__main__":
    main()
