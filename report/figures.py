"""Report figures (matplotlib, Agg): runtime vs quality, qualitative grids, seed spread.

* ``runtime_vs_quality``: one panel per task, one point per solver (mean over seeds, error bars
  = std over seeds) at (wall time per image, quality); quality is LPIPS (Alex, else VGG) where
  computed, else PSNR.  Every solver has its own colour and marker (``solver_styles``: 20
  colours x 10 markers, the same in every figure of a report) and is named in one legend beside
  the panels, so no label sits on a point.
* ``qualitative_grid``: per dataset x task, the first images (rows): original, the measurement
  as an image (``op.to_image``; blank where the operator has none), then each solver (first seed).
* ``seed_spread``: per dataset and metric, every seed's value per solver and task.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dipbench.paths import ROOT  # noqa: E402

QUALITY_ORDER = ("lpips_alex", "lpips_vgg", "psnr", "ssim", "map_rel_err")


def quality_metric(df: pd.DataFrame) -> str | None:
    for m in QUALITY_ORDER:
        if m in df and pd.to_numeric(df[m], errors="coerce").notna().any():
            return m
    return None


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def solver_styles(solvers) -> dict:
    """{solver: dict(color, marker)}: distinct for every solver (tab20's 20 colours, paired with 10
    markers so that two solvers never share both), assigned in sorted order so a solver looks the
    same in every figure built from the same leaderboard."""
    cmap = plt.get_cmap("tab20")
    names = sorted(dict.fromkeys(map(str, solvers)))
    # tab20 alternates dark/light shades of 10 hues: take the dark ones first, then the light ones
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return {s: dict(color=cmap(order[i % 20]), marker=MARKERS[(i + i // 20) % len(MARKERS)])
            for i, s in enumerate(names)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def runtime_vs_quality(df: pd.DataFrame, dataset: str, out: Path) -> Path | None:
    sub = df[df["dataset"] == dataset]
    m = quality_metric(sub)
    if m is None or "wall_per_image_s" not in sub:
        return None
    import metrics

    hib = metrics.METRICS.get(m).higher_is_better if m in metrics.METRICS else True
    tasks = sorted(sub["task"].astype(str).unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.0 * len(tasks) + 2.2, 3.8), squeeze=False)
    styles = solver_styles(df["solver"])
    handles = {}
    for ax, t in zip(axes[0], tasks):
        st = sub[sub["task"].astype(str) == t]
        for s, g in st.groupby("solver"):
            q = pd.to_numeric(g[m], errors="coerce")
            w = pd.to_numeric(g["wall_per_image_s"], errors="coerce")
            if q.notna().sum() == 0:
                continue
            sty = styles[str(s)]
            h = ax.errorbar(w.mean(), q.mean(), xerr=w.std() if len(w) > 1 else None,
                            yerr=q.std() if q.notna().sum() > 1 else None, fmt=sty["marker"], color=sty["color"],
                            markersize=7, markeredgecolor="k", markeredgewidth=0.5, capsize=3, label=str(s))
            handles.setdefault(str(s), h)
        ax.set_xscale("log")
        from matplotlib import ticker  # 1-2-5 ticks labelled plainly; unlabelled minor ticks (the
        wv = pd.to_numeric(st["wall_per_image_s"], errors="coerce")
        wv = wv[wv > 0]
        wide = len(wv) and float(np.log10(wv.max() / wv.min())) > 2
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))  # default
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))     # labelled the
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())                          # minor ones: overlap)
        ax.set_xlabel(f"wall time per image (s), {sub['device'].iloc[0] if 'device' in sub else ''}", fontsize=8)
        ax.set_ylabel(f"{m} ({'higher' if hib else 'lower'} is better)")
        ax.set_title(t)
        ax.grid(alpha=0.3)
    names = sorted(handles)
    fig.legend([handles[n] for n in names], names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               frameon=False, title="solver", title_fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.suptitle(f"{dataset}: runtime vs {m} (mean ± std over seeds)")
    return _save(fig, out)


def _img(a: np.ndarray | None):
    if a is None:
        return None
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    a = np.clip((a + 1) / 2, 0, 1)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _resolve(p) -> Path:
    p = Path(p)
    return p if p.is_absolute() or p.exists() else ROOT / p


def qualitative_grid(df: pd.DataFrame, dataset: str, task: str, out: Path, n_images: int = 4) -> Path | None:
    import torch

    from dipbench.pipeline import load_measurement, operator_for

    sub = df[(df["dataset"] == dataset) & (df["task"].astype(str) == task)]
    if sub.empty or "run_dir" not in sub:
        return None
    seed = sorted(sub["seed"].unique())[0]
    runs = sub[sub["seed"] == seed].sort_values("solver")
    first = _resolve(runs["run_dir"].iloc[0])
    import json

    run = json.loads((first / "run.json").read_text())
    meas_dir = _resolve(run.get("measurement", ""))
    if not (meas_dir / "measurement.npz").exists():
        return None
    meta, m = load_measurement(meas_dir)
    x = m["x"][:n_images]
    if x.ndim != 4:
        return None
    # the measurement as report/degradations.py shows it: y itself when image-shaped, else the
    # pseudo-inverse A^+ y for SVD operators (SR: the low-resolution image at full size, not the
    # adjoint y/f^2, which is nearly black), else the operator's own picture
    from .degradations import measurement_picture

    try:
        op = operator_for(meta)
        pics = [measurement_picture(op, m["y"][i:i + 1]) for i in range(len(x))]
        y_img = None if any(k != "image" for _, k in pics) else \
            np.stack([(p.numpy().transpose(2, 0, 1) if p.ndim == 3 else p.numpy()[None]) * 2 - 1 for p, _ in pics])
    except Exception:  # noqa: BLE001 - a picture the operator cannot give: the panel says n/a
        y_img = None
    cols = [("original", x.numpy()), ("measurement", y_img)]
    for _, r in runs.iterrows():
        p = _resolve(r["run_dir"]) / "recon.npz"
        if p.exists():
            cols.append((str(r["solver"]), np.load(p)["recon"][:n_images]))
    n = len(x)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.6 * n + 0.4), squeeze=False)
    for j, (name, arr) in enumerate(cols):
        for i in range(n):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            im = None if arr is None else _img(arr[i])
            if im is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(im, cmap="gray" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if i == 0:
                ax.set_title(name.replace("--", "\n"), fontsize=7)
    fig.suptitle(f"{dataset} / {task} (seed {seed})", fontsize=9)
    return _save(fig, out)


def seed_spread(df: pd.DataFrame, dataset: str, metric: str, out: Path) -> Path | None:
    sub = df[df["dataset"] == dataset]
    if metric not in sub or pd.to_numeric(sub[metric], errors="coerce").notna().sum() == 0:
        return None
    tasks = sorted(sub["task"].astype(str).unique())
    solvers = sorted(sub["solver"].astype(str).unique())
    styles = solver_styles(df["solver"])
    # width: at least 0.45 in per solver so the rotated names do not run into each other; height
    # grows with the longest name (sweep variants are long)
    longest = max((len(s) for s in solvers), default=8)
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(3.0, 0.45 * len(solvers) + 1.2) * len(tasks),
                                                     3.0 + 0.06 * longest), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        st = sub[sub["task"].astype(str) == t]
        for i, s in enumerate(solvers):
            v = pd.to_numeric(st[st["solver"].astype(str) == s][metric], errors="coerce").dropna()
            if len(v):
                ax.plot(np.full(len(v), i) + np.linspace(-0.08, 0.08, len(v)), v, styles[s]["marker"],
                        color=styles[s]["color"], markeredgecolor="k", markeredgewidth=0.4, alpha=0.9)
                ax.hlines(v.mean(), i - 0.25, i + 0.25, color="k", lw=1)
        ax.set_xticks(range(len(solvers)))
        ax.set_xticklabels(solvers, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_title(t)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{dataset}: {metric} per seed (dots) and mean (bar)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))   # room for the title, the y labels and the rotated names
    return _save(fig, out)


def all_figures(df: pd.DataFrame, out_dir: Path, n_images: int = 4) -> list[tuple[str, Path]]:
    """[(caption, path)] for every figure written under out_dir/figures."""
    out = []
    fig_dir = Path(out_dir) / "figures"
    for ds in sorted(df["dataset"].astype(str).unique()):
        p = runtime_vs_quality(df, ds, fig_dir / f"{ds}__runtime_vs_quality.png")
        if p:
            out.append((f"{ds}: runtime per image vs {quality_metric(df[df['dataset'] == ds])}", p))
        for t in sorted(df[df["dataset"] == ds]["task"].astype(str).unique()):
            try:
                p = qualitative_grid(df, ds, t, fig_dir / f"{ds}__{t}__grid.png", n_images)
            except Exception as e:  # a figure is never worth failing the report for
                print(f"[report] grid {ds}/{t} skipped: {type(e).__name__}: {e}")
                p = None
            if p:
                out.append((f"{ds} / {t}: qualitative grid (original, measurement, solvers)", p))
        for m in [quality_metric(df[df["dataset"] == ds]), "psnr"]:
            if m and not any(f"{ds}__seeds_{m}" in str(q) for _, q in out):
                p = seed_spread(df, ds, m, fig_dir / f"{ds}__seeds_{m}.png")
                if p:
                    out.append((f"{ds}: {m} spread over seeds", p))
    return out


def is_finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
