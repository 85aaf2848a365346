"""Paired statistics for the tables: each cell against the best solver of its column.

Every solver of a (dataset, task, seed) reconstructs the same measurements, so the per-image
scores of two solvers are paired: image i of seed k is the same x and the same y for both.  For a
cell (solver s, column c, metric m) and the column's best solver b (best mean, the bold cell),
the per-image differences d[k, i] = score_s[k, i] - score_b[k, i] are reduced to one unit per
image, u_i = mean over the seeds k where both are finite, and

* the interval is a 95% bootstrap interval of the mean of u over ``n_boot`` draws of the images
  with replacement (an image carries all of its seeds, so the seed-to-seed variation of each
  image is inside the interval; an effect shared by all images of one seed, e.g. one random mask
  per seed, is not: the seed spread beside the mean shows it).  It is the expanded percentile
  interval (Hesterberg 2015): the percentiles are read at the level where a normal quantile
  equals sqrt(n/(n-1)) times Student's t quantile with n-1 degrees of freedom, which corrects the
  plain percentile interval's undercoverage on few images (measured in tests/test_stats.py);
* the p-value of "no difference" is the two-sided p-value dual to that interval (the smallest
  1 - level whose interval excludes 0; 0 when every draw falls on one side);
* with fewer than MIN_BOOT_IMAGES images the bootstrap covers too rarely, and the interval and
  p-value are Student's t ones of the per-image differences instead (the table says which);
* within a column the p-values of the k solvers compared with the best are adjusted by Holm's
  step-down method (family-wise error 5% per column), and a cell whose adjusted p-value is at
  least 0.05 is marked as not significantly different from the best.

``resample_seeds=True`` also draws the seeds with replacement (a two-way "pigeonhole" bootstrap,
conservative for crossed effects); the tables use the image bootstrap.  The bootstrap's random
draws come from a generator seeded by the cell's names, so a report is reproducible bit for bit.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dipbench.seeding import stable_seed

LEVEL = 0.95
ALPHA = 0.05
N_BOOT = 2000
CORRECTION = "Holm"
# Below this many images the bootstrap's coverage falls short (measured on normal differences:
# 0.77 / 0.89 / 0.92 / 0.94 at 3 / 4 / 5 / 6 images, 0.94-0.95 from 8 on; tests/test_stats.py), so
# a column with fewer images gets Student's t interval of the paired differences instead (exact
# for normal differences) and the table says so.
MIN_BOOT_IMAGES = 8


@lru_cache(maxsize=4096)
def _scores_csv(path: str, mtime: float) -> pd.DataFrame | None:  # mtime: re-read a changed file
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def run_scores(run_dir) -> pd.DataFrame | None:
    """A run's per-image scores (its scores.csv), or None when it has none."""
    from .figures import _resolve

    p = _resolve(run_dir) / "scores.csv"
    if not p.is_file():
        return None
    return _scores_csv(str(p), p.stat().st_mtime)


def per_image(rows: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    """(seed x image id) matrix of one cell's per-image ``metric`` (NaN where not finite), from the
    runs (leaderboard rows with ``run_dir`` and ``seed``) of the cell; None if any run lacks it."""
    if "run_dir" not in rows or rows.empty or _per_set(metric):
        return None  # a per-set metric (FID) has one value per run: nothing to pair per image
    parts = {}
    for seed, rd in zip(rows["seed"], rows["run_dir"]):
        if not isinstance(rd, str) or not rd:
            return None
        sc = run_scores(rd)
        if sc is None or metric not in sc or "image_id" not in sc:
            return None
        v = pd.to_numeric(sc[metric], errors="coerce")
        parts[int(seed)] = pd.Series(v.to_numpy(dtype=float), index=sc["image_id"].astype(str))
    if not parts:
        return None
    return pd.DataFrame(parts).T.sort_index()


def _per_set(metric: str) -> bool:
    try:
        import metrics

        return getattr(metrics.METRICS.get(metric), "kind", "per_image") == "per_set"
    except Exception:  # noqa: BLE001 - an unknown name: treat as per image
        return False


def paired_units(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per image, the mean over seeds of a - b where both are finite (images with no such seed are
    left out).  ``a`` and ``b``: (seed x image id) frames from per_image."""
    seeds = a.index.intersection(b.index)
    ims = a.columns.intersection(b.columns)
    d = a.loc[seeds, ims].to_numpy(dtype=float) - b.loc[seeds, ims].to_numpy(dtype=float)
    ok = np.isfinite(d)
    n = ok.sum(0)
    keep = n > 0
    return np.where(ok, d, 0.0).sum(0)[keep] / n[keep]


def _expanded(n: int, level: float) -> float:
    """The level at which to read the bootstrap percentiles so that a sample of n images covers
    like a t interval: z' = sqrt(n / (n - 1)) t_{n-1} (Hesterberg's expanded percentile interval;
    the plain percentile interval is too narrow for few images, 88% coverage at n = 8)."""
    from scipy.special import ndtr, stdtrit

    if n < 2:
        return level
    z = math.sqrt(n / (n - 1)) * stdtrit(n - 1, 1 - (1 - level) / 2)
    return float(1 - 2 * ndtr(-z))


def _dual_p(means: np.ndarray, n: int) -> float:
    """Two-sided p-value of "mean 0": the smallest 1 - level whose expanded interval excludes 0."""
    from scipy.special import ndtri, stdtr

    b = len(means)
    q = min((means <= 0).sum() / b, (means >= 0).sum() / b)
    if q >= 0.5 or n < 2:
        return 1.0
    if q == 0:
        return 0.0  # every draw on one side: below the draws' resolution (1 / n_boot)
    z = -ndtri(q)
    return float(min(1.0, 2 * stdtr(n - 1, -z / math.sqrt(n / (n - 1)))))


def bootstrap_mean(units: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                   rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """(lo, hi, p): expanded percentile interval of the mean of ``units`` (resampled with
    replacement) and the two-sided p-value of mean 0 dual to it."""
    units = np.asarray(units, dtype=float)
    n = len(units)
    if n < 2:
        return math.nan, math.nan, math.nan
    rng = rng or np.random.default_rng(0)
    means = units[rng.integers(0, n, size=(n_boot, n))].mean(1)
    a = (1 - _expanded(n, level)) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi), _dual_p(means, n)


def bootstrap_two_way(d: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
                      rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """Like bootstrap_mean on a complete (seeds x images) difference matrix, drawing the seeds and
    the images with replacement independently (the pigeonhole bootstrap)."""
    d = np.asarray(d, dtype=float)
    m, n = d.shape
    rng = rng or np.random.default_rng(0)
    means = np.empty(n_boot)
    for b in range(n_boot):
        means[b] = d[np.ix_(rng.integers(0, m, m), rng.integers(0, n, n))].mean()
    a = (1 - _expanded(n, level)) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi), _dual_p(means, n)


def t_interval(units: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(lo, hi, p): Student's t interval of the mean of ``units`` and the p-value of mean 0."""
    from scipy.special import stdtr, stdtrit

    u = np.asarray(units, dtype=float)
    n = len(u)
    if n < 2:
        return math.nan, math.nan, math.nan
    m, se = float(u.mean()), float(u.std(ddof=1)) / math.sqrt(n)
    if se == 0:
        return m, m, (1.0 if m == 0 else 0.0)
    h = float(stdtrit(n - 1, 1 - (1 - level) / 2)) * se
    return m - h, m + h, float(2 * stdtr(n - 1, -abs(m) / se))


def interval(units: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL,
             rng: np.random.Generator | None = None) -> tuple[float, float, float, str]:
    """(lo, hi, p, method): the bootstrap with at least MIN_BOOT_IMAGES units, else the t interval."""
    if len(units) >= MIN_BOOT_IMAGES:
        return (*bootstrap_mean(units, n_boot, level, rng), "bootstrap")
    return (*t_interval(units, level), "t")


def holm(pvals) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(pvals, dtype=float)
    k = len(p)
    out = np.full(k, np.nan)
    ok = np.isfinite(p)
    idx = np.where(ok)[0]
    if not len(idx):
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def compare_column(cells: dict, best, names, n_boot: int = N_BOOT, level: float = LEVEL) -> dict:
    """{row: dict(lo, hi, p, p_adj, same, n)} for every row of one column with per-image scores.

    ``cells``: {row: (seed x image) frame or None}; ``best``: the best row; ``names``: strings
    that seed the bootstrap's generator (dataset, column, metric).  The difference is always
    row minus best, in the metric's own units (negative = lower than the best)."""
    out = {}
    b = cells.get(best)
    if b is None:
        return out
    rows, ps = [], []
    for r, a in cells.items():
        if r == best or a is None:
            continue
        u = paired_units(a, b)
        if len(u) < 2:
            continue
        rng = np.random.default_rng(stable_seed("paired-bootstrap", *map(str, names), str(r)))
        lo, hi, p, method = interval(u, n_boot, level, rng)
        out[r] = dict(lo=lo, hi=hi, p=p, n=int(len(u)), diff=float(u.mean()), method=method)
        rows.append(r)
        ps.append(p)
    for r, pa in zip(rows, holm(ps)):
        out[r]["p_adj"] = float(pa)
        out[r]["same"] = bool(pa >= ALPHA)
    return out


def describe(n_boot: int = N_BOOT, methods=("bootstrap",)) -> str:
    """The method in one sentence, for table captions (``methods``: those the table used)."""
    how = []
    if "bootstrap" in methods:
        how.append(f"bootstrap over images ({n_boot} draws, expanded percentile interval; each image with all "
                   f"its seeds)")
    if "t" in methods:
        how.append(f"Student's t interval of the per-image differences where fewer than {MIN_BOOT_IMAGES} images "
                   f"are paired (too few for the bootstrap)")
    return (f"[Δ lo, hi]: 95% interval of the paired difference to the column's best (bold), "
            f"{'; '.join(how)}; ≈: not significantly different from the best ({CORRECTION}-corrected over "
            f"the column's comparisons, family-wise α = {ALPHA:g}).")


def resolve_path(p) -> Path:
    from .figures import _resolve

    return _resolve(p)
