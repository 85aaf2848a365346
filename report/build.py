"""The report step: tables per dataset (every metric, every task) and the entry page index.md."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dipbench.io import write_text
from .tables import build_table, to_latex, to_markdown


def metric_direction(name: str) -> bool:
    import metrics

    try:
        return metrics.METRICS.get(name).higher_is_better
    except KeyError:
        return True


def dataset_table(df: pd.DataFrame, metric_names, digits: int = 3):
    """Rows: solvers; columns: (task, metric) with arrows for the better direction."""
    parts, notes = [], []
    for m in metric_names:
        if m not in df or df[m].isna().all() and not df.get("unavailable", pd.Series(dtype=str)).fillna("").str.contains(m).any():
            continue
        shown, _, n = build_table(df, m, metric_direction(m), digits=digits)
        arrow = "↑" if metric_direction(m) else "↓"
        shown.columns = [f"{t} {m}{arrow}" for t in shown.columns]
        parts.append(shown)
        notes += n
    table = pd.concat(parts, axis=1) if parts else pd.DataFrame()
    order = sorted(table.columns, key=lambda c: (c.split(" ")[0], [*metric_names].index(c.split(" ")[1][:-1])))
    return table[order], sorted(set(notes))


def build_report(cfg, leaderboard_csv, out_dir) -> list[Path]:
    out_dir = Path(out_dir)
    df = pd.read_csv(leaderboard_csv)
    metric_names = list(cfg.get("metrics", []))
    written = []
    lines = ["# dipbench report", "",
             f"Leaderboard: `{leaderboard_csv}` ({len(df)} runs: dataset x task x solver x seed).", "",
             "## Tables", ""]
    for ds, sub in df.groupby("dataset"):
        table, notes = dataset_table(sub, metric_names)
        if table.empty:
            continue
        seeds = sub["seed"].nunique()
        title = f"{ds}: mean ± std over {seeds} seed(s)"
        md, tex = out_dir / "tables" / f"{ds}.md", out_dir / "tables" / f"{ds}.tex"
        write_text(md, to_markdown(table, title, notes))
        write_text(tex, to_latex(table, title, notes, label=f"tab:{ds}"))
        written += [md, tex]
        lines.append(f"- [{ds}](tables/{ds}.md) ([LaTeX](tables/{ds}.tex))")
    lines.append("")
    write_text(out_dir / "index.md", "\n".join(lines) + "\n")
    return written
