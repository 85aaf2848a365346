"""Paper-style tables from the leaderboard: mean +- std over seeds, best per column in bold, and
the paired comparison of every cell with the column's best (report/stats.py).

Rendered to Markdown (tabulate, through pandas), LaTeX (booktabs, every symbol as a LaTeX macro)
and HTML (report/html.py).  Cells: per seed the mean over images, then mean and standard
deviation across seeds; beside it, where the runs have per-image scores, the 95% interval of
the paired difference to the column's best and a mark when the two are not significantly
different; a cell whose runs diverged or whose metric is unavailable shows a dash with a
footnote mark.
"""
from __future__ import annotations

import math

import pandas as pd

DIVERGED, UNAVAILABLE = "†", "‡"


_ESC = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "{": r"\{", "}": r"\}",
        "$": r"\$", "^": r"\^{}", "~": r"\textasciitilde{}"}


def _latex_escape(s: str) -> str:
    """Plain text -> LaTeX text (the characters LaTeX treats specially, escaped in one pass)."""
    import re

    return re.sub(r"[\\_%&#{}$^~]", lambda m: _ESC[m.group(0)], s)


# ============================================================================ grid tables (specs)
# A grid table: rows (solvers) x column groups (tasks or masks) x metrics, one dataset.  Each cell
# is the mean +- std over seeds of the per-seed means; the best mean per column is bold.
NOT_RUN, NOT_COMPUTED = "§", "¶"

METRIC_LABELS = {
    "psnr": "PSNR", "ssim": "SSIM", "ssim_skimage": "SSIM (skimage)", "lpips_alex": "LPIPS (Alex)",
    "lpips_vgg": "LPIPS (VGG)", "fid": "FID", "map_rel_err": "MAP rel. err.", "sw": "SW",
    "wall_per_image_s": "s / image", "nfe_per_image": "NFE", "vjp_per_image": "VJP",
    "peak_memory_mb": "peak MiB",
}
LOWER_BETTER = {"wall_per_image_s", "nfe_per_image", "vjp_per_image", "peak_memory_mb", "sw", "n_diverged"}
DEFAULT_FORMATS = {"psnr": ".2f", "ssim": ".3f", "ssim_skimage": ".3f", "fid": ".1f", "map_rel_err": ".3f",
                   "wall_per_image_s": ".3g", "nfe_per_image": ".0f", "vjp_per_image": ".0f",
                   "peak_memory_mb": ".0f"}


def higher_is_better(metric: str, override: dict | None = None) -> bool:
    """Direction: the spec's override ('higher'/'lower'), else the metric registry, else costs lower."""
    if override and metric in override:
        return str(override[metric]).lower().startswith("h")
    if metric in LOWER_BETTER:
        return False
    try:
        import metrics

        return bool(metrics.METRICS.get(metric).higher_is_better)
    except Exception:
        return True


def metric_label(metric: str, hib: bool) -> str:
    return METRIC_LABELS.get(metric, metric) + ("↑" if hib else "↓")


def unavailable_reasons(df: pd.DataFrame) -> dict:
    """{metric: reason} parsed from the leaderboard's 'unavailable' column ('name: reason; ...')."""
    out = {}
    if "unavailable" not in df:
        return out
    for s in df["unavailable"].dropna().astype(str):
        for part in s.split("; "):
            if ": " in part:
                k, v = part.split(": ", 1)
                out.setdefault(k.strip(), v.strip())
    return out


SAME = "≈"  # not significantly different from the column's best (report/stats.py)


class Grid:
    """A rendered-agnostic grid table: ``cells[(row, group, metric)]`` = dict(text, bold, marks,
    mean, std, seeds, fmt, runs, and where per-image scores allow: ci (lo, hi), p_adj, same)."""

    def __init__(self, title, rows, groups, metrics, cells, notes, caption=""):
        self.title, self.rows, self.groups, self.metrics = title, rows, groups, metrics
        self.cells, self.notes, self.caption = cells, notes, caption
        self.hib, self.stats = {}, False

    def columns(self):
        return [(g, m) for g in self.groups for m in self.metrics]


def ci_text(cell: dict, minus: str = "−") -> str:
    """'[Δ lo, hi]' of a cell with an interval, '' otherwise."""
    if not cell.get("ci"):
        return ""
    lo, hi = cell["ci"]
    f = cell.get("fmt", ".3f")
    return f"[Δ {lo:{f}}, {hi:{f}}]".replace("-", minus)


def build_grid(df: pd.DataFrame, rows, groups, metrics, title: str = "", caption: str = "",
               formats: dict | None = None, better: dict | None = None, row_key: str = "solver",
               col_key: str = "task", spread: str = "std", stats: bool = True, names=()) -> Grid:
    """rows / groups: lists of (label, name) matched against ``df[row_key]`` / ``df[col_key]``.
    spread: ``std`` (sample std over seeds) or ``ci95`` (95% confidence half-width of the mean,
    t distribution: t_{0.975, n-1} std / sqrt(n)).  stats: compare every cell with its column's
    best by the paired bootstrap (report/stats.py) where the rows have ``run_dir`` with per-image
    scores; ``names`` seed its generator (e.g. the dataset and table id)."""
    if spread not in ("std", "ci95"):
        raise ValueError(f"spread must be 'std' or 'ci95', got {spread!r}")
    formats = {**DEFAULT_FORMATS, **(formats or {})}
    reasons = unavailable_reasons(df)
    cells, notes = {}, {}
    hib = {m: higher_is_better(m, better) for m in metrics}
    means, subs = {}, {}
    for rl, rn in rows:
        for gl, gn in groups:
            sub = df[(df[row_key].astype(str) == str(rn)) & (df[col_key].astype(str) == str(gn))]
            subs[(rl, gl)] = sub
            div = bool(len(sub)) and (("n_diverged" in sub and sub["n_diverged"].fillna(0).sum() > 0)
                                      or ("status" in sub and (sub["status"] == "diverged").any()))
            for m in metrics:
                marks, text, mean, std, n = "", "–", math.nan, math.nan, 0
                fmt = formats.get(m, ".3f")
                if sub.empty:
                    marks = NOT_RUN
                    notes[NOT_RUN] = f"{NOT_RUN} not run in this configuration."
                elif m not in sub:
                    marks = NOT_COMPUTED
                    notes[NOT_COMPUTED] = (f"{NOT_COMPUTED} metric not computed in this configuration "
                                           f"(add it to the config's `metrics:` list).")
                else:
                    vals = pd.to_numeric(sub[m], errors="coerce")
                    vals = vals[vals.map(lambda v: math.isfinite(v) if isinstance(v, float) else False)]
                    n = len(vals)
                    if len(vals):
                        mean = float(vals.mean())
                        std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
                        if spread == "ci95" and len(vals) > 1:
                            from scipy.stats import t as _t

                            std *= float(_t.ppf(0.975, len(vals) - 1)) / math.sqrt(len(vals))
                        text = f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if not math.isnan(std) else "")
                        if div:
                            marks = DIVERGED
                    elif m in reasons or ("unavailable" in sub and sub["unavailable"].fillna("").astype(str)
                                          .str.contains(m, regex=False).any()):
                        marks = UNAVAILABLE
                        notes[UNAVAILABLE + m] = f"{UNAVAILABLE} {m}: {reasons.get(m, 'unavailable')}"
                    elif div:
                        marks = DIVERGED
                    if marks == DIVERGED:
                        notes[DIVERGED] = (f"{DIVERGED} some images (or seeds) diverged: non-finite output; "
                                           f"the mean is over the finite ones, '–' where none is.")
                runs = list(sub["run_dir"].astype(str)) if "run_dir" in sub else []
                cells[(rl, gl, m)] = dict(text=text, bold=False, marks=marks, mean=mean, std=std, seeds=n,
                                          fmt=fmt, runs=runs, seed_list=list(sub["seed"]) if "seed" in sub else [])
                means[(rl, gl, m)] = mean
    compared = set()
    for gl, _ in groups:
        for m in metrics:
            col = [means[(rl, gl, m)] for rl, _ in rows if not math.isnan(means[(rl, gl, m)])]
            if len(col) < 2:
                continue
            best = max(col) if hib[m] else min(col)
            for rl, _ in rows:
                if means[(rl, gl, m)] == best:
                    cells[(rl, gl, m)]["bold"] = True
            if stats and m not in LOWER_BETTER:
                compared |= _compare(cells, subs, rows, gl, m, best, means, hib[m], names)
    if compared:
        from .stats import describe

        notes["~" + SAME] = describe(methods=compared)
    order = [DIVERGED, UNAVAILABLE, NOT_RUN, NOT_COMPUTED]
    keys = sorted(notes, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k))
    grid = Grid(title, [r for r, _ in rows], [g for g, _ in groups], list(metrics), cells,
                [notes[k] for k in keys], caption)
    grid.hib, grid.stats = hib, compared
    return grid


def _compare(cells, subs, rows, gl, m, best, means, hib, names) -> set:
    """Paired comparison of every row of column (gl, m) with its best row (report/stats.py); fills
    ci / p_adj / same in the cells.  Returns the interval methods used (empty: no per-image scores)."""
    from .stats import compare_column, per_image

    ref = next(rl for rl, _ in rows if means[(rl, gl, m)] == best)
    mats = {rl: per_image(subs[(rl, gl)], m) if not math.isnan(means[(rl, gl, m)]) else None for rl, _ in rows}
    if mats.get(ref) is None:
        return set()
    res = compare_column(mats, ref, (*names, gl, m))
    for rl, r in res.items():
        c = cells[(rl, gl, m)]
        c.update(ci=(r["lo"], r["hi"]), p_adj=r["p_adj"], same=r["same"], diff=r["diff"], n_images=r["n"],
                 method=r["method"])
        if r["same"] and not c["bold"]:
            c["marks"] = SAME + c["marks"]
    cells[(ref, gl, m)]["reference"] = True
    return {r["method"] for r in res.values()}


def _cell_md(c: dict) -> str:
    t = f"**{c['text']}**" if c["bold"] else c["text"]
    ci = ci_text(c)
    return t + (f" {ci}" if ci else "") + c["marks"]


def grid_markdown(grid: Grid) -> str:
    one_group = len(grid.groups) == 1 and len(grid.metrics) > 1
    header = ["Solver"] + [metric_label(m, grid.hib[m]) if one_group else
                           f"{g} {metric_label(m, grid.hib[m])}" for g, m in grid.columns()]
    body = [[r] + [_cell_md(grid.cells[(r, g, m)]) for g, m in grid.columns()] for r in grid.rows]
    table = pd.DataFrame(body, columns=header).to_markdown(index=False, disable_numparse=True)
    parts = [f"### {grid.title}", ""]
    if grid.caption:
        parts += [grid.caption, ""]
    parts += [table, ""] + [f"{n}  " for n in grid.notes]
    return "\n".join(parts) + "\n"


def _tex(s: str) -> str:
    s = _latex_escape(str(s))
    for a, b in (("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("–", "--"), ("—", "---"),
                 (DIVERGED, r"$^\dagger$"), (UNAVAILABLE, r"$^\ddagger$"), (NOT_RUN, r"$^\S$"),
                 (NOT_COMPUTED, r"$^\P$"), (SAME, r"$^{\approx}$")):
        s = s.replace(a, b)
    for a, b in UNICODE_TEX.items():  # the papers' labels (ΠGDM, σ_y, SR ×4, x₀.₅) for pdflatex
        s = s.replace(a, b)
    return s


UNICODE_TEX = {"σ": r"$\sigma$", "Π": r"$\Pi$", "η": r"$\eta$", "×": r"$\times$", "·": r"$\cdot$",
               "∈": r"$\in$", "⁺": r"$^{+}$", "−": "-", "←": r"$\leftarrow$", "₀": r"$_{0}$",
               "₅": r"$_{5}$", "≤": r"$\leq$", "≥": r"$\geq$", "°": r"$^{\circ}$", "Δ": r"$\Delta$",
               "α": r"$\alpha$", "λ": r"$\lambda$", "ε": r"$\varepsilon$", "μ": r"$\mu$", "τ": r"$\tau$",
               "…": r"\dots{}", "→": r"$\rightarrow$", "²": r"$^{2}$", "’": "'", "“": "``", "”": "''"}


def _tex_ci(c: dict) -> str:
    if not c.get("ci"):
        return ""
    lo, hi = c["ci"]
    f = c.get("fmt", ".3f")
    return rf" {{\scriptsize[$\Delta$ ${lo:{f}}$, ${hi:{f}}$]}}"


def grid_latex(grid: Grid, label: str) -> str:
    """A booktabs table: group header with \\cmidrule, metric header, \\midrule, rows, \\bottomrule."""
    nm = len(grid.metrics)
    ncol = 1 + len(grid.groups) * nm
    spec = "l" + "".join("c" * nm for _ in grid.groups)
    lines = [r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{_tex(grid.title)}}}",
             rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if nm > 1 or len(grid.groups) > 1:
        head = [""] + [rf"\multicolumn{{{nm}}}{{c}}{{{_tex(g)}}}" if nm > 1 else _tex(g) for g in grid.groups]
        lines.append(" & ".join(head) + r" \\")
        if nm > 1:
            lines.append(" ".join(rf"\cmidrule(lr){{{2 + i * nm}-{1 + (i + 1) * nm}}}"
                                  for i in range(len(grid.groups))))
    lines.append(" & ".join(["Solver"] + [_tex(metric_label(m, grid.hib[m])) for _, m in grid.columns()]) + r" \\")
    lines.append(r"\midrule")
    for r in grid.rows:
        row = [_tex(r)]
        for g, m in grid.columns():
            c = grid.cells[(r, g, m)]
            t = _tex(c["text"])
            row.append((rf"\textbf{{{t}}}" if c["bold"] else t) + _tex_ci(c) + _tex(c["marks"]))
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if grid.caption:
        lines.append(rf"\par\footnotesize {_tex(grid.caption)}")
    for n in grid.notes:
        lines.append(rf"\par\footnotesize {_tex(n)}")
    lines.append(r"\end{table}")
    assert all(l.count("&") == ncol - 1 for l in lines if l.endswith(r"\\") and "multicolumn" not in l)
    return "\n".join(lines) + "\n"
