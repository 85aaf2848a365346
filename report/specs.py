"""Table specs (config/tables.yaml) resolved against a leaderboard and rendered to Markdown + LaTeX.

``load_specs(cfg)`` reads the specs (config key ``tables``: ``{file: path}`` or ``{specs: [...]}``;
default config/tables.yaml); ``render_specs(specs, df, out_dir, results)`` writes
``tables/<id>__<dataset>.md|.tex`` and returns (entries for index.md, skipped notes).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from dipbench.io import write_text
from dipbench.paths import ROOT
from .tables import build_grid, grid_latex, grid_markdown, higher_is_better

DEFAULT_SPECS = ROOT / "config" / "tables.yaml"


def load_specs(cfg) -> tuple[list[dict], str]:
    t = (cfg or {}).get("tables") or {}
    if isinstance(t, dict) and t.get("specs") is not None:
        return list(t["specs"]), "config (inline `tables.specs`)"
    path = Path(t.get("file", DEFAULT_SPECS) if isinstance(t, dict) else DEFAULT_SPECS)
    if not path.is_absolute():
        path = ROOT / path
    with open(path) as f:
        return list((yaml.safe_load(f) or {}).get("specs", [])), str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _pairs(sel, present) -> tuple[list, list]:
    """(label, name) pairs of ``sel`` ("*", list or {label: name}) present, and the names absent."""
    if sel in (None, "*"):
        return [(p, p) for p in present], []
    items = list(sel.items()) if isinstance(sel, dict) else [(s, s) for s in sel]
    have = [(str(lab), str(n)) for lab, n in items if str(n) in set(map(str, present))]
    return have, [str(n) for _, n in items if str(n) not in set(map(str, present))]


def _sorted_unique(s):
    return list(dict.fromkeys(sorted(s.astype(str))))


def _write(out_dir: Path, stem: str, md: str, tex: str) -> tuple[str, str]:
    write_text(out_dir / "tables" / f"{stem}.md", md)
    write_text(out_dir / "tables" / f"{stem}.tex", tex)
    return f"tables/{stem}.md", f"tables/{stem}.tex"


def _caption(spec, extra=""):
    bits = [spec.get("paper", ""), (spec.get("what") or "").strip(), extra]
    return " ".join(b for b in bits if b)


def select_sweeps(sub: pd.DataFrame, spec) -> tuple[pd.DataFrame, str]:
    """Rows of a swept solver (``sweep_of`` set, dipbench/sweeps.py) replaced by the best variant
    per task, the way the papers report a sweep; returns (frame, footnote naming the choices).

    The selection metric is the spec's ``select_by``, else the first of its metrics with a value
    for the swept rows (LPIPS is unavailable offline, so PSNR then decides)."""
    from dipbench.sweeps import best_of_sweep

    if "sweep_of" not in sub:
        return sub, ""
    swept = sub["sweep_of"].notna() & (sub["sweep_of"].astype(str) != "")
    if not swept.any():
        return sub, ""
    cands = [spec["select_by"]] if spec.get("select_by") else list(spec.get("metrics", ["psnr"]))
    metric = next((m for m in cands if m in sub and pd.to_numeric(sub.loc[swept, m], errors="coerce").notna().any()), None)
    if metric is None:
        return sub, f"Sweeps {sorted(set(sub.loc[swept, 'sweep_of'].astype(str)))}: no {cands} value to select by."
    frame = sub.copy()
    frame[metric] = pd.to_numeric(frame[metric], errors="coerce")
    out = best_of_sweep(frame, metric, higher_is_better(metric, spec.get("better")))
    chosen = (out[out["variant"].astype(str) != out["solver"].astype(str)]
              [["solver", "task", "variant"]].drop_duplicates().sort_values(["solver", "task"]))
    picks = "; ".join(f"{r.solver} / {r.task}: {r.variant}" for r in chosen.itertuples())
    return out, (f"Swept solvers show their best variant per task by mean {metric} over seeds "
                 f"(best of sweep, as the papers report): {picks}.")


def render_grid_spec(spec, df, out_dir):
    entries, reasons = [], []
    datasets = _sorted_unique(df["dataset"])
    for lay in spec.get("layouts", []):
        ds_sel = lay.get("datasets", "*")
        ds = datasets if ds_sel == "*" else [d for d in ds_sel if d in datasets]
        if not ds:
            reasons.append(f"datasets {ds_sel} not in the leaderboard")
            continue
        for d in ds:
            sub, sweep_note = select_sweeps(df[df["dataset"].astype(str) == d], spec)
            cols, cols_absent = _pairs(lay.get("columns", "*"), _sorted_unique(sub["task"]))
            rows, rows_absent = _pairs(lay.get("rows", "*"), _sorted_unique(sub["solver"]))
            if not cols or not rows:
                reasons.append(f"{d}: none of the tasks {cols_absent} ran" if not cols
                               else f"{d}: none of the solvers {rows_absent} ran")
                continue
            seeds = sub["seed"].nunique()
            dropped = ""
            if rows_absent or cols_absent:
                dropped = ("Not in this run (dropped): " + ", ".join(
                    ([f"solvers {rows_absent}"] if rows_absent else []) + ([f"tasks {cols_absent}"] if cols_absent else [])) + ".")
            title = f"{spec.get('title', spec['id'])} — {d} (mean ± std over {seeds} seed(s))"
            grid = build_grid(sub, rows, cols, lay.get("metrics", spec.get("metrics", ["psnr"])), title=title,
                              caption=_caption(spec, " ".join(b for b in (dropped, sweep_note) if b)), formats=spec.get("formats"),
                              better=spec.get("better"), spread=spec.get("spread", "std"))
            stem = f"{spec['id']}__{d}"
            md, tex = _write(out_dir, stem, grid_markdown(grid), grid_latex(grid, f"tab:{stem}"))
            entries.append((f"{spec.get('paper', spec['id'])}: {spec.get('title', '')} — {d}", md, tex))
        if entries:
            break  # the first layout that renders wins (paper datasets before the embedded stand-in)
    return entries, reasons


def _run_params(run_dir) -> dict | None:
    p = Path(run_dir) / "run.json"
    if not p.is_absolute() and not p.exists():
        p = ROOT / p
    if not p.exists():
        return None
    with open(p) as f:
        return json.load(f).get("params", {})


def _fmt_param(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def render_hparams_spec(spec, df, out_dir):
    entries, reasons = [], []
    if "run_dir" not in df:
        return entries, ["the leaderboard has no run_dir column"]
    for d in _sorted_unique(df["dataset"]):
        sub = df[df["dataset"].astype(str) == d]
        rows_out, keys = [], []
        lay = (spec.get("layouts") or [{}])[0]
        solvers, _ = _pairs(lay.get("rows", "*"), _sorted_unique(sub["solver"]))
        for label, s in solvers:
            per_task = {}
            for t, g in sub[sub["solver"].astype(str) == s].groupby("task"):
                params = _run_params(g.sort_values("seed")["run_dir"].iloc[0])
                if params is not None:
                    per_task[str(t)] = {k: _fmt_param(v) for k, v in params.items()}
            if not per_task:
                continue
            vals = list(per_task.values())
            groups = {"all": vals[0]} if all(v == vals[0] for v in vals) else per_task
            for t, p in groups.items():
                rows_out.append((label, t, p))
                keys += [k for k in p if k not in keys]
        if not rows_out:
            reasons.append(f"{d}: no run.json found")
            continue
        table = pd.DataFrame([[lab, t] + [p.get(k, "") for k in keys] for lab, t, p in rows_out],
                             columns=["Solver", "Task"] + keys)
        title = f"{spec.get('title', 'Hyperparameters')} — {d}"
        md = "\n".join([f"### {title}", "", _caption(spec), "",
                        table.to_markdown(index=False, disable_numparse=True), ""]) + "\n"
        from .tables import _latex_escape

        ncol = len(table.columns)
        lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_latex_escape(title)}}}",
                 rf"\label{{tab:{spec['id']}__{d}}}", r"\begin{tabular}{" + "ll" + "c" * (ncol - 2) + "}",
                 r"\toprule", " & ".join(_latex_escape(str(c)) for c in table.columns) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex_escape(str(v)) for v in r) + r" \\" for r in table.itertuples(index=False)]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        stem = f"{spec['id']}__{d}"
        md_p, tex_p = _write(out_dir, stem, md, "\n".join(lines) + "\n")
        entries.append((f"{spec.get('paper', spec['id'])}: {spec.get('title', '')} — {d}", md_p, tex_p))
    return entries, reasons


def render_gmm_spec(spec, df, out_dir, results):
    paths = [Path(str(p).format(results=results)) for p in spec.get("csv", [])]
    paths = [p if p.is_absolute() or p.exists() else ROOT / p for p in paths]
    found = next((p for p in paths if p.is_file()), None)
    if found is None:
        return [], [f"no CSV from benchmarks/gmm_table.py (looked for {', '.join(map(str, paths))}); "
                    f"add a `gmm_table:` section to the config (the `gmm_table` rule writes it)"]
    g = pd.read_csv(found)
    frame = pd.DataFrame({"dataset": "gmm25", "task": [f"d = {d}" for d in g["dim"]],
                          "solver": g["solver"].astype(str), "seed": g["replicate"],
                          "sw": pd.to_numeric(g["sw"], errors="coerce"),
                          "n_diverged": (~g["finite"].astype(str).str.lower().isin(["true", "1"])).astype(int)
                          if "finite" in g else 0})
    dims = sorted(g["dim"].unique())
    cols = [(f"d = {d}", f"d = {d}") for d in dims]
    rows, absent = _pairs(spec.get("rows", "*"), _sorted_unique(frame["solver"]))
    extra = sorted(set(frame["solver"]) - {n for _, n in rows})
    rows += [(s, s) for s in extra]
    reps = frame["seed"].nunique()
    meta = g.iloc[0]
    title = (f"{spec.get('title', 'GMM')} (d_y = {meta.get('d_y', '?')}, sigma_y = {meta.get('sigma_y', '?')}, "
             f"{meta.get('samples', '?')} samples; mean ± "
             f"{'95% CI' if spec.get('spread') == 'ci95' else 'std'} over {reps} replicates)")
    grid = build_grid(frame, rows, cols, spec.get("metrics", ["sw"]), title=title,
                      caption=_caption(spec, f"Source: `{found}`."), formats=spec.get("formats"),
                      better=spec.get("better"), spread=spec.get("spread", "std"))
    stem = f"{spec['id']}__gmm25"
    md, tex = _write(out_dir, stem, grid_markdown(grid), grid_latex(grid, f"tab:{stem}"))
    return [(f"{spec.get('paper', spec['id'])}: {spec.get('title', '')}", md, tex)], []


def render_specs(specs, df, out_dir, results):
    out_dir = Path(out_dir)
    entries, skipped = [], []
    for spec in specs:
        kind = spec.get("kind", "grid")
        try:
            if kind == "hyperparams":
                e, r = render_hparams_spec(spec, df, out_dir)
            elif kind == "gmm_csv":
                e, r = render_gmm_spec(spec, df, out_dir, results)
            else:
                e, r = render_grid_spec(spec, df, out_dir)
        except Exception as ex:  # one bad spec must not take the report down; say so in index.md
            e, r = [], [f"error while rendering: {type(ex).__name__}: {ex}"]
        entries += e
        if not e:
            skipped.append((spec.get("id"), spec.get("paper", ""), "; ".join(r) or "nothing to show"))
    return entries, skipped

