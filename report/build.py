"""The report step: overview tables per dataset, the paper-table specs, the reproduction report,
the figures, the entry page index.md and the HTML leaderboard index.html (report/html.py).

Every table reads the test images' runs only; the tuning split's runs (`<dataset>.tune`,
dipbench/config.py) serve to choose the variant of a swept solver (config `selection`).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from dipbench.io import write_text
from .tables import (LOWER_BETTER, METRIC_LABELS, build_grid, grid_latex, grid_markdown, unavailable_reasons)

COST = ["wall_per_image_s", "nfe_per_image", "vjp_per_image", "peak_memory_mb"]


def metric_direction(name: str) -> bool:
    from .tables import higher_is_better

    return higher_is_better(name)


def available_metrics(df: pd.DataFrame, metric_names) -> tuple[list, list]:
    """(metrics with a value in some run of ``df``, [(metric, why not)] for the others)."""
    reasons = unavailable_reasons(df)
    have, missing = [], []
    for m in metric_names:
        if m in df and pd.to_numeric(df[m], errors="coerce").notna().any():
            have.append(m)
        else:
            missing.append((m, reasons.get(m, "no value in these runs (e.g. the metric needs an exact prior "
                                              "or was not computed)")))
    return have, missing


def overview_grids(df: pd.DataFrame, tune: pd.DataFrame, dataset: str, metric_names, selection,
                   costs: bool = True):
    """The overview of one dataset: one grid per metric with values (rows: every solver, swept
    ones reduced to their chosen variant; columns: the tasks) and one cost grid (averaged over the
    tasks), plus the selection note and the metrics not shown."""
    from .specs import layout_frame

    spec = {"id": "overview", "metrics": list(metric_names)}
    lay = {"datasets": [dataset], "columns": "*", "rows": "*"}
    frame, rows, cols, _, _, sweep_note = layout_frame(spec, lay, df, dataset, tune, selection)
    have, missing = available_metrics(frame, [m for m in metric_names if m not in LOWER_BETTER])
    seeds = frame["seed"].nunique() if "seed" in frame else 0
    grids = []
    for m in have:
        label = METRIC_LABELS.get(m, m)
        grids.append(build_grid(frame, rows, cols, [m], title=f"{dataset} — {label} (mean ± std over {seeds} seed(s))",
                                names=("overview", dataset)))
    if costs:
        cframe, crows, ccols, _, _, _ = layout_frame(spec, {"datasets": [dataset], "columns": {"all tasks": "*"},
                                                            "rows": "*"}, df, dataset, tune, selection)
        cm = [c for c in COST if c in cframe and pd.to_numeric(cframe[c], errors="coerce").notna().any()]
        if cm:
            grids.append(build_grid(cframe, crows, ccols, cm,
                                    title=f"{dataset} — cost per image, averaged over the tasks (mean ± std over "
                                          f"{seeds} seed(s))", names=("overview-cost", dataset)))
    return grids, sweep_note, missing


def build_report(cfg, leaderboard_csv, out_dir) -> list[Path]:
    """Every table (per-dataset overview + the specs of config/tables.yaml), every figure, index.md
    and the HTML leaderboard (index.html)."""
    from dipbench.config import selection as config_selection

    from .figures import all_figures
    from .html import build_html
    from .specs import load_specs, render_specs, split_frames

    out_dir = Path(out_dir)
    df_all = pd.read_csv(leaderboard_csv)
    df, tune = split_frames(df_all)
    selection = config_selection(cfg)
    metric_names = list(cfg.get("metrics", []))
    results = cfg.get("results", str(out_dir.parent))
    written = []
    _, missing_all = available_metrics(df, [m for m in metric_names if m not in LOWER_BETTER])
    lines = ["# dipbench report", "",
             f"Leaderboard: `{leaderboard_csv}` ({len(df)} runs on the test images: dataset x task x solver x seed"
             + (f"; {len(tune)} more on the tuning splits" if len(tune) else "") + "). "
             "Cells: mean ± std over seeds of the per-seed mean over images; best per column in bold; "
             "[Δ lo, hi]: 95% bootstrap interval of the paired difference to the column's best; "
             "≈: not significantly different from the best (Holm-corrected). "
             "The HTML leaderboard (sortable tables, figures, per-image viewer, run provenance): `index.html`.", "",
             f"Sweep selection: `{selection}` — " + ("a swept solver's variant is chosen on each dataset's tuning "
                                                     "split (images disjoint from the test images) and reported "
                                                     "on the test images." if selection == "tune" else
                                                     "a swept solver's variant is the best on the test images "
                                                     "themselves (the papers' protocol; optimistic)."), ""]
    if missing_all:
        lines += ["Metrics not available in these runs (left out of the tables):", ""]
        lines += [f"- `{m}`: {why}" for m, why in missing_all] + [""]
    lines += ["## Overview tables (every available metric, every task)", ""]
    overviews = []
    for ds in sorted(df["dataset"].astype(str).unique()):
        grids, note, missing = overview_grids(df, tune, ds, metric_names, selection)
        if not grids:
            continue
        notes = [note or "Selection: no swept solver on this dataset (each row is one configuration)."]
        missing_here = [m for m, _ in missing if m not in {x for x, _ in missing_all}]
        if missing_here:
            notes.append(f"No value on this dataset: {', '.join(missing_here)}.")
        md = "\n".join([f"## {ds}", ""] + [f"{n}  " for n in notes] + [""] + [grid_markdown(g) for g in grids])
        tex = "\n".join(grid_latex(g, f"tab:{ds}__{i}") for i, g in enumerate(grids))
        mdp, texp = out_dir / "tables" / f"{ds}.md", out_dir / "tables" / f"{ds}.tex"
        write_text(mdp, md)
        write_text(texp, tex)
        written += [mdp, texp]
        overviews.append(dict(dataset=ds, grids=grids, notes=notes, md=f"tables/{ds}.md", tex=f"tables/{ds}.tex"))
        lines.append(f"- [{ds}](tables/{ds}.md) ([LaTeX](tables/{ds}.tex))")

    specs, source = load_specs(cfg)
    collected = []
    entries, skipped = render_specs(specs, df_all, out_dir, results, selection=selection, collect=collected)
    lines += ["", f"## Paper tables (specs: `{source}`)", ""]
    for title, md, tex in entries:
        lines.append(f"- [{title}]({md}) ([LaTeX]({tex}))")
        written += [out_dir / md, out_dir / tex]
    if skipped:
        lines += ["", "Skipped specs (nothing of theirs in this leaderboard):", ""]
        lines += [f"- `{sid}` ({paper}): {why}" for sid, paper, why in skipped]

    from .reported import render as render_reported

    rep, rep_index = render_reported(specs, df_all, out_dir, selection=selection)
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
    lines += ["", "## Costs", "",
              "Costs (s/image, NFE, VJP, peak memory, device) come from each run's run.json: the cost tables "
              "above and the leaderboard.", ""]
    write_text(out_dir / "index.md", "\n".join(lines) + "\n")
    written.append(out_dir / "index.md")

    written += build_html(cfg, df, tune, out_dir, overviews=overviews, tables=collected, skipped=skipped,
                          figures=figs, selection=selection, specs=specs, missing=missing_all,
                          leaderboard=leaderboard_csv)
    return written
