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
        if m not in df or df[m].isna().all() and not df.get("unavailable", pd.Series(dtype=str)).fillna("").astype(str).str.contains(m).any():
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
    """Every table (per-dataset overview + the specs of config/tables.yaml), every figure, index.md."""
    from .figures import all_figures
    from .specs import load_specs, render_specs
    from .tables import unavailable_reasons

    out_dir = Path(out_dir)
    df = pd.read_csv(leaderboard_csv)
    metric_names = list(cfg.get("metrics", []))
    results = cfg.get("results", str(out_dir.parent))
    written = []
    lines = ["# dipbench report", "",
             f"Leaderboard: `{leaderboard_csv}` ({len(df)} runs: dataset x task x solver x seed). "
             f"Cells: mean ± std over seeds of the per-seed mean over images; best per column in bold.", "",
             "## Overview tables (every metric, every task)", ""]
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

    specs, source = load_specs(cfg)
    entries, skipped = render_specs(specs, df, out_dir, results)
    lines += ["", f"## Paper tables (specs: `{source}`)", ""]
    for title, md, tex in entries:
        lines.append(f"- [{title}]({md}) ([LaTeX]({tex}))")
        written += [out_dir / md, out_dir / tex]
    if skipped:
        lines += ["", "Skipped specs (nothing of theirs in this leaderboard):", ""]
        lines += [f"- `{sid}` ({paper}): {why}" for sid, paper, why in skipped]

    from .reported import render as render_reported

    rep, rep_index = render_reported(specs, df, out_dir)
    lines += ["", "## Reproduction (the papers' numbers beside ours)", "",
              f"- [Reproduction report: reported vs measured, cells within tolerance]({rep_index})"]
    lines += [f"- [{title}]({path})" for title, path in rep]
    written += [out_dir / rep_index] + [out_dir / path for _, path in rep]

    figs = all_figures(df, out_dir, n_images=int((cfg.get("report") or {}).get("grid_images", 4)))
    lines += ["", "## Figures", ""]
    for cap, p in figs:
        rel = p.relative_to(out_dir).as_posix()
        lines.append(f"- [{cap}]({rel})")
        written.append(p)

    lines += ["", "## Performance", ""]
    if (out_dir / "perf.md").is_file():  # written beside this page by the `perf` rule
        lines.append("- [Overhead per NFE, throughput, memory, end-to-end time split](perf.md)")
    else:
        lines.append("Not measured for these results: `snakemake --cores all perf` (same --configfile) writes "
                     "perf.md here.")

    reasons = unavailable_reasons(df)
    lines += ["", "## Metrics", ""]
    lines.append("Costs (s/image, NFE, VJP, peak memory, device) come from each run's run.json; see the "
                 "cost table above and the leaderboard.")
    if reasons:
        lines += ["", "Unavailable here (shown as '–‡' in the tables):", ""]
        lines += [f"- `{k}`: {v}" for k, v in sorted(reasons.items())]
    lines.append("")
    write_text(out_dir / "index.md", "\n".join(lines) + "\n")
    written.append(out_dir / "index.md")
    return written
