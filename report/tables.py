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
                if unavail is not None and unavail.fillna("").str.contains(metric).any():
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
