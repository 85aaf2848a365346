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


GROUP_SEP = "\x1f"  # joins a row group label and a solver name inside a layout's frame


def _seed_filter(frame: pd.DataFrame, seeds) -> pd.DataFrame:
    if seeds is None or "seed" not in frame:
        return frame
    return frame[frame["seed"].astype(int).isin([int(k) for k in seeds])]


def _column_frame(sub: pd.DataFrame, label: str, task: str) -> pd.DataFrame:
    """The rows of one table column, relabelled ``task = label``.  ``task: "*"`` is every task of the
    dataset averaged per (solver, seed) first (cost tables: one column for the whole grid)."""
    if task != "*":
        part = sub[sub["task"].astype(str) == str(task)].copy()
        part["task"] = label
        return part
    num = [c for c in sub.columns if c not in ("dataset", "task", "solver", "seed", "variant", "sweep_of")
           and pd.api.types.is_numeric_dtype(sub[c])]
    keys = [c for c in ("dataset", "solver", "seed") if c in sub]
    part = sub.groupby(keys, as_index=False, sort=False)[num].mean() if len(sub) else sub.iloc[0:0].copy()
    def merged(c, v):
        if c == "status":
            return "diverged" if (v == "diverged").any() else "ok"
        texts = [str(x) if isinstance(x, str) else "" for x in v]
        joined = "; ".join(sorted({t for t in texts if t}))
        return f"on some of the tasks: {joined}" if joined and "" in texts and c == "oracle" else joined

    for c in ("status", "unavailable", "oracle"):
        if c in sub:
            part = part.merge(sub.groupby(keys, as_index=False, sort=False)[c].agg(lambda v, c=c: merged(c, v)),
                              on=keys, how="left")
    part["task"] = label
    return part


def layout_frame(spec: dict, lay: dict, df: pd.DataFrame, dataset: str):
    """Resolve one layout on one dataset: (frame with task = column label and solver = row name,
    rows [(label, name)], columns [(label, label)], rows absent, tasks absent, sweep note).

    A layout has ``columns`` ({label: task}, [task] or "*") and ``rows`` ({label: solver}, [solver]
    or "*"), or ``row_groups`` ({group label: {column label: task}}): the same rows repeated per
    group, each group reading its own tasks under shared column labels (MAP-GA Table 3: masks as
    columns, one group of rows per noise level)."""
    sub = _seed_filter(df[df["dataset"].astype(str) == dataset], lay.get("seeds", spec.get("seeds")))
    sub, sweep_note = select_sweeps(sub, spec)
    present_tasks = _sorted_unique(sub["task"])
    rows, rows_absent = _pairs(lay.get("rows", "*"), _sorted_unique(sub["solver"]))
    if lay.get("row_groups"):
        parts, cols, cols_absent, out_rows = [], [], [], []
        for g, mapping in lay["row_groups"].items():
            have, absent = _pairs(mapping, present_tasks)
            cols_absent += absent
            for label, task in have:
                part = _column_frame(sub, label, task)
                part["solver"] = f"{g}{GROUP_SEP}" + part["solver"].astype(str)
                parts.append(part)
            for label in mapping:
                if str(label) not in [c for c, _ in cols]:
                    cols.append((str(label), str(label)))
            if have:
                out_rows += [(f"{g} · {rl}", f"{g}{GROUP_SEP}{rn}") for rl, rn in rows]
        frame = pd.concat(parts, ignore_index=True) if parts else sub.iloc[0:0]
        cols = [c for c in cols if c[0] in set(frame["task"].astype(str))] if len(frame) else []
        return frame, out_rows, cols, rows_absent, cols_absent, sweep_note
    sel = lay.get("columns", "*")
    if sel in (None, "*"):
        pairs, absent = [(t, t) for t in present_tasks], []
    else:
        items = list(sel.items()) if isinstance(sel, dict) else [(c, c) for c in sel]
        pairs = [(str(l), str(t)) for l, t in items if str(t) == "*" or str(t) in present_tasks]
        absent = [str(t) for _, t in items if str(t) != "*" and str(t) not in present_tasks]
    parts = [_column_frame(sub, label, task) for label, task in pairs]
    frame = pd.concat(parts, ignore_index=True) if parts else sub.iloc[0:0]
    return frame, rows, [(label, label) for label, _ in pairs], rows_absent, absent, sweep_note


def protocol_notes(frame: pd.DataFrame, rows) -> list[str]:
    """Footnotes for what a row's runs did beyond the plain protocol: a sigma_y told to the solver
    that differs from the measurement's, the projection post-step, and ORACLE options (ground truth
    used: best-of-k selection, initialisation from x0 + sigma * eta).  Never silent."""
    notes = []
    label_of = {str(n): str(l) for l, n in rows}
    sub = frame[frame["solver"].astype(str).isin(label_of)]
    if sub.empty:
        return notes

    def who(mask):
        """Row labels, each with the columns it applies to when that is not every column of the row."""
        out = []
        for s in dict.fromkeys(sub.loc[mask, "solver"].astype(str)):
            mine = sub["solver"].astype(str) == s
            cols = list(dict.fromkeys(sub.loc[mine & mask, "task"].astype(str)))
            every = list(dict.fromkeys(sub.loc[mine, "task"].astype(str)))
            out.append(label_of[s] + ("" if len(cols) == len(every) else f" ({', '.join(cols)})"))
        return ", ".join(out)

    if "sigma_y_solver" in sub and "sigma_y" in sub:
        told = pd.to_numeric(sub["sigma_y_solver"], errors="coerce")
        meas = pd.to_numeric(sub["sigma_y"], errors="coerce")
        diff = told.notna() & meas.notna() & ((told - meas).abs() > 1e-12 * (1 + meas.abs()))
        for val in sorted(set(told[diff])):
            m = diff & (told == val)
            notes.append(f"σ_y told to the solver: {val:g} (the measurements have σ_y = "
                         f"{', '.join(f'{v:g}' for v in sorted(set(meas[m])))}), rows: {who(m)}.")
    if "project" in sub:
        m = sub["project"].astype(str).str.lower().isin(["true", "1"])
        if m.any():
            notes.append(f"Projected onto the measurement subspace, x ← x − A⁺(Ax − y), after solving: {who(m)}.")
    if "oracle" in sub:
        o = sub["oracle"].fillna("").astype(str)
        for text in sorted(set(o[o != ""])):
            notes.append(f"ORACLE (uses the ground truth; not a fair comparison): {who(o == text)}: {text}.")
    return notes


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
            frame, rows, cols, rows_absent, cols_absent, sweep_note = layout_frame(spec, lay, df, d)
            if not cols or not rows:
                reasons.append(f"{d}: none of the tasks {cols_absent} ran" if not cols
                               else f"{d}: none of the solvers {rows_absent} ran")
                continue
            seeds = frame["seed"].nunique() if "seed" in frame else 0
            dropped = ""
            if rows_absent or cols_absent:
                dropped = ("Not in this run (dropped): " + ", ".join(
                    ([f"solvers {rows_absent}"] if rows_absent else []) +
                    ([f"tasks {sorted(set(cols_absent))}"] if cols_absent else [])) + ".")
            notes = protocol_notes(frame, rows)
            head = lay.get("title", spec.get("title", spec["id"]))
            title = f"{head} — {d} (mean ± std over {seeds} seed(s))"
            extra = " ".join(b for b in (lay.get("what", ""), dropped, sweep_note, *notes) if b)
            if lay.get("title"):  # an analogue (e.g. the embedded data): say what it mirrors, not the paper's setup
                caption = " ".join(b for b in (f"Mirrors {spec.get('paper', spec['id'])} "
                                               f"({spec.get('title', '')}).", extra) if b)
            else:
                caption = _caption(spec, extra)
            grid = build_grid(frame, rows, cols, lay.get("metrics", spec.get("metrics", ["psnr"])), title=title,
                              caption=caption, formats=spec.get("formats"),
                              better=spec.get("better"), spread=spec.get("spread", "std"))
            stem = f"{spec['id']}__{d}"
            md, tex = _write(out_dir, stem, grid_markdown(grid), grid_latex(grid, f"tab:{stem}"))
            entries.append((f"{spec.get('paper', spec['id'])}: {head} — {d}", md, tex))
        if entries:
            break  # the first layout that renders wins (paper datasets before the embedded stand-in)
    return entries, reasons


# ---------------------------------------------------------------------------- spec <-> grid checks
def spec_grids(spec) -> list[str]:
    g = spec.get("grid")
    return [] if g is None else ([g] if isinstance(g, str) else list(g))


def layout_names(lay: dict) -> tuple[list, list, list]:
    """(datasets, tasks, solvers) a layout asks for ("*" entries left out)."""
    ds = [] if lay.get("datasets", "*") == "*" else list(lay["datasets"])
    tasks = []
    if lay.get("row_groups"):
        for mapping in lay["row_groups"].values():
            tasks += [str(t) for t in (mapping.values() if isinstance(mapping, dict) else mapping)]
    else:
        sel = lay.get("columns", "*")
        if sel not in (None, "*"):
            tasks += [str(t) for t in (sel.values() if isinstance(sel, dict) else sel)]
    sel = lay.get("rows", "*")
    solvers = [] if sel in (None, "*") else [str(s) for s in (sel.values() if isinstance(sel, dict) else sel)]
    return ds, [t for t in tasks if t != "*"], solvers


def spec_grid_errors(specs, cfg) -> list[str]:
    """For the paper grid ``cfg`` (its ``paper_grid`` name): every spec whose ``grid`` names it must
    have a layout on the grid's datasets, and that layout's tasks and solver rows must all be in the
    grid (solver rows: entry names or sweep base names).  Empty list = consistent."""
    from dipbench.config import solver_entries

    name = cfg.get("paper_grid")
    errs = []
    entries = solver_entries(cfg)
    solver_names = set(entries) | {e["sweep_of"] for e in entries.values() if e.get("sweep_of")}
    tasks, datasets = set(cfg.get("tasks", {})), set(cfg.get("datasets", {}))
    for spec in specs:
        if name not in spec_grids(spec) or spec.get("kind", "grid") != "grid":
            continue
        mine = [lay for lay in spec.get("layouts", []) if layout_names(lay)[0]
                and set(layout_names(lay)[0]) <= datasets]
        if not mine:
            errs.append(f"spec {spec['id']}: no layout on this grid's datasets {sorted(datasets)}")
        for i, lay in enumerate(mine):
            _, t, s = layout_names(lay)
            miss_t = [x for x in t if x not in tasks]
            miss_s = [x for x in s if x not in solver_names]
            if miss_t:
                errs.append(f"spec {spec['id']} layout {i}: task(s) {miss_t} not in this grid's tasks")
            if miss_s:
                errs.append(f"spec {spec['id']} layout {i}: solver(s) {miss_s} not in this grid's solvers")
    return errs


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

