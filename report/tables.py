"""Paper-style tables from the leaderboard: mean +- std over seeds, best per column in bold.

Rendered to Markdown (tabulate, through pandas) and LaTeX (booktabs, through pandas' Styler).
Cells: per seed the mean over images, then mean and standard deviation across seeds; a cell
whose runs diverged or whose metric is unavailable shows a dash with a footnote mark.
"""
from __future__ import annotations

import math

import pandas as pd

DIVERGED, UNAVAILABLE = "†", "‡"


def cell_stats(df: pd.DataFrame, rows: str, cols: str, metric: str) -> pd.DataFrame:
    g = df.groupby([rows, cols])
    out = g[metric].agg(["mean", "std", "count"])
    out["diverged"] = g["n_diverged"].sum() if "n_diverged" in df else 0
    out["seeds"] = g["seed"].nunique()
    return out.reset_index()


def fmt_cell(mean, std, digits: int, bold: bool) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = f"{mean:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        s += f" ± {std:.{digits}f}"
    return f"**{s}**" if bold else s


def build_table(df: pd.DataFrame, metric: str, higher_is_better: bool, rows: str = "solver",
                cols: str = "task", digits: int = 3, row_order=None, col_order=None):
    """Returns (display DataFrame of strings, raw means DataFrame, footnotes list)."""
    st = cell_stats(df, rows, cols, metric)
    means = st.pivot(index=rows, columns=cols, values="mean")
    stds = st.pivot(index=rows, columns=cols, values="std")
    div = st.pivot(index=rows, columns=cols, values="diverged")
    if row_order:
        means, stds, div = (t.reindex([r for r in row_order if r in t.index]) for t in (means, stds, div))
    if col_order:
        means, stds, div = (t[[c for c in col_order if c in t.columns]] for t in (means, stds, div))
    notes = set()
    shown = pd.DataFrame(index=means.index, columns=means.columns, dtype=object)
    for c in means.columns:
        col = means[c]
        best = col.max() if higher_is_better else col.min()
        for r in means.index:
            m, s = col[r], stds.loc[r, c]
            txt = fmt_cell(m, s, digits, bold=(not math.isnan(m) and m == best))
            if div.loc[r, c] and div.loc[r, c] > 0:
                txt += DIVERGED
                notes.add(f"{DIVERGED} some images diverged (non-finite output); the mean is over the rest.")
            if isinstance(m, float) and math.isnan(m):
                unavail = df[(df[rows] == r) & (df[cols] == c)].get("unavailable")
                if unavail is not None and unavail.fillna("").astype(str).str.contains(metric).any():
                    txt = "–" + UNAVAILABLE
                    notes.add(f"{UNAVAILABLE} metric unavailable here (see the leaderboard's 'unavailable' column "
                              f"for the reason and the prefetch command).")
            shown.loc[r, c] = txt
    return shown, means, sorted(notes)


def to_markdown(shown: pd.DataFrame, title: str, notes, caption: str = "") -> str:
    body = shown.reset_index().to_markdown(index=False)
    parts = [f"### {title}", "", caption, "", body, ""] if caption else [f"### {title}", "", body, ""]
    parts += [f"{n}  " for n in notes]
    return "\n".join(parts) + "\n"


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_latex(shown: pd.DataFrame, title: str, notes, label: str) -> str:
    def conv(s):
        s = str(s)
        bold = s.startswith("**")
        s = s.strip("*").replace("±", r"$\pm$").replace(DIVERGED, r"$^\dagger$").replace(UNAVAILABLE, r"$^\ddagger$")
        s = s.replace("–", "--")
        return r"\textbf{" + s + "}" if bold else s

    body = shown.map(conv)
    body.index = [_latex_escape(str(i)) for i in body.index]
    body.columns = [_latex_escape(str(c)) for c in body.columns]
    body.index.name = _latex_escape(str(shown.index.name or ""))
    tex = body.style.to_latex(hrules=True, column_format="l" + "c" * len(body.columns))
    marks = {DIVERGED: r"$^\dagger$", UNAVAILABLE: r"$^\ddagger$"}
    foot = ""
    for n in notes:
        n = _latex_escape(n)
        for k, v in marks.items():
            n = n.replace(k, v)
        foot += "\\footnotesize " + n + "\\par\n"
    return (f"\\begin{{table}}[t]\n\\centering\n\\caption{{{_latex_escape(title)}}}\n\\label{{{label}}}\n"
            f"{tex}{foot}\\end{{table}}\n")


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


class Grid:
    """A rendered-agnostic grid table: ``cells[(row, group, metric)] = dict(text, bold, marks)``."""

    def __init__(self, title, rows, groups, metrics, cells, notes, caption=""):
        self.title, self.rows, self.groups, self.metrics = title, rows, groups, metrics
        self.cells, self.notes, self.caption = cells, notes, caption

    def columns(self):
        return [(g, m) for g in self.groups for m in self.metrics]


def build_grid(df: pd.DataFrame, rows, groups, metrics, title: str = "", caption: str = "",
               formats: dict | None = None, better: dict | None = None, row_key: str = "solver",
               col_key: str = "task", spread: str = "std") -> Grid:
    """rows / groups: lists of (label, name) matched against ``df[row_key]`` / ``df[col_key]``.
    spread: ``std`` (sample std over seeds) or ``ci95`` (95% confidence half-width of the mean,
    t distribution: t_{0.975, n-1} std / sqrt(n))."""
    if spread not in ("std", "ci95"):
        raise ValueError(f"spread must be 'std' or 'ci95', got {spread!r}")
    formats = {**DEFAULT_FORMATS, **(formats or {})}
    reasons = unavailable_reasons(df)
    cells, notes = {}, {}
    hib = {m: higher_is_better(m, better) for m in metrics}
    means = {}
    for rl, rn in rows:
        for gl, gn in groups:
            sub = df[(df[row_key].astype(str) == str(rn)) & (df[col_key].astype(str) == str(gn))]
            div = bool(len(sub)) and (("n_diverged" in sub and sub["n_diverged"].fillna(0).sum() > 0)
                                      or ("status" in sub and (sub["status"] == "diverged").any()))
            for m in metrics:
                marks, text, mean = "", "–", math.nan
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
                    if len(vals):
                        mean = float(vals.mean())
                        std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
                        if spread == "ci95" and len(vals) > 1:
                            from scipy.stats import t as _t

                            std *= float(_t.ppf(0.975, len(vals) - 1)) / math.sqrt(len(vals))
                        fmt = formats.get(m, ".3f")
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
                cells[(rl, gl, m)] = dict(text=text, bold=False, marks=marks)
                means[(rl, gl, m)] = mean
    for gl, _ in groups:
        for m in metrics:
            col = [means[(rl, gl, m)] for rl, _ in rows if not math.isnan(means[(rl, gl, m)])]
            if len(col) < 2:
                continue
            best = max(col) if hib[m] else min(col)
            for rl, _ in rows:
                if means[(rl, gl, m)] == best:
                    cells[(rl, gl, m)]["bold"] = True
    order = [DIVERGED, UNAVAILABLE, NOT_RUN, NOT_COMPUTED]
    keys = sorted(notes, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k))
    grid = Grid(title, [r for r, _ in rows], [g for g, _ in groups], list(metrics), cells,
                [notes[k] for k in keys], caption)
    grid.hib = hib
    return grid


def grid_markdown(grid: Grid) -> str:
    one_group = len(grid.groups) == 1 and len(grid.metrics) > 1
    header = ["Solver"] + [metric_label(m, grid.hib[m]) if one_group else
                           (f"{g} {metric_label(m, grid.hib[m])}" if len(grid.metrics) > 1 else
                            f"{g} {metric_label(m, grid.hib[m])}") for g, m in grid.columns()]
    body = []
    for r in grid.rows:
        line = [r]
        for g, m in grid.columns():
            c = grid.cells[(r, g, m)]
            t = f"**{c['text']}**" if c["bold"] else c["text"]
            line.append(t + c["marks"])
        body.append(line)
    table = pd.DataFrame(body, columns=header).to_markdown(index=False, disable_numparse=True)
    parts = [f"### {grid.title}", ""]
    if grid.caption:
        parts += [grid.caption, ""]
    parts += [table, ""] + [f"{n}  " for n in grid.notes]
    return "\n".join(parts) + "\n"


def _tex(s: str) -> str:
    s = _latex_escape(str(s))
    for a, b in (("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("–", "--"),
                 (DIVERGED, r"$^\dagger$"), (UNAVAILABLE, r"$^\ddagger$"), (NOT_RUN, r"$^\S$"),
                 (NOT_COMPUTED, r"$^\P$"), ("~", r"\textasciitilde{}")):
        s = s.replace(a, b)
    for a, b in UNICODE_TEX.items():  # the papers' labels (ΠGDM, σ_y, SR ×4, x₀.₅) for pdflatex
        s = s.replace(a, b)
    return s


UNICODE_TEX = {"σ": r"$\sigma$", "Π": r"$\Pi$", "η": r"$\eta$", "×": r"$\times$", "·": r"$\cdot$",
               "∈": r"$\in$", "⁺": r"$^{+}$", "−": "-", "←": r"$\leftarrow$", "₀": r"$_{0}$",
               "₅": r"$_{5}$", "≤": r"$\leq$", "≥": r"$\geq$", "°": r"$^{\circ}$"}


def grid_latex(grid: Grid, label: str) -> str:
    """A booktabs table: group header with \\cmidrule, metric header, \\midrule, rows, \\bottomrule."""
    nm = len(grid.metrics)
    ncol = 1 + len(grid.groups) * nm
    spec = "l" + "".join("c" * nm for _ in grid.groups)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(grid.title)}}}",
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
            row.append((rf"\textbf{{{t}}}" if c["bold"] else t) + _tex(c["marks"]))
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if grid.caption:
        lines.append(rf"\par\footnotesize {_tex(grid.caption)}")
    for n in grid.notes:
        lines.append(rf"\par\footnotesize {_tex(n)}")
    lines.append(r"\end{table}")
    assert all(l.count("&") == ncol - 1 for l in lines if l.endswith(r"\\") and "multicolumn" not in l)
    return "\n".join(lines) + "\n"
