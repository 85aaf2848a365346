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


def split_frames(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(test rows, tuning rows) of a leaderboard: the tuning split's runs are those of the datasets
    named `<dataset>.tune` (dipbench/config.py); in the second frame they carry the test dataset's
    name and ``split`` = 'tune'."""
    from dipbench.config import split_of

    if df.empty or "dataset" not in df:
        return df, df.iloc[0:0]
    sp = df["dataset"].astype(str).map(split_of)
    tune = sp.map(lambda t: t[1] == "tune")
    out = df[tune].copy()
    out["dataset"] = sp[tune].map(lambda t: t[0])
    out["split"] = "tune"
    return df[~tune].copy(), out


def infer_selection(tune: pd.DataFrame | None) -> str:
    """'tune' when the leaderboard has tuning-split runs, else 'test' (a config's `selection`
    decides in the report rule; this default serves frames built by hand)."""
    return "tune" if tune is not None and len(tune) else "test"


def selection_note(selection: str, metric: str | None, picks: str, tune: pd.DataFrame | None = None,
                   dataset: str | None = None) -> str:
    if selection == "tune":
        n = ""
        if tune is not None and dataset is not None and "n_images" in tune:
            k = pd.to_numeric(tune.loc[tune["dataset"].astype(str) == dataset, "n_images"], errors="coerce").max()
            n = f" ({int(k)} images of {dataset}.tune, disjoint from the test images, same seeds)" if k == k else ""
        return (f"Selection (tuning split): each swept solver shows the variant with the best mean {metric} on "
                f"the tuning split{n}, reported on the test images: {picks}.")
    return (f"Selection (test, the papers' protocol): swept solvers show their best variant per task by mean "
            f"{metric} over seeds on the reported test images themselves (best of sweep, optimistic): {picks}.")


def select_sweeps(sub: pd.DataFrame, spec, tune: pd.DataFrame | None = None,
                  selection: str | None = None) -> tuple[pd.DataFrame, str]:
    """Rows of a swept solver (``sweep_of`` set, dipbench/sweeps.py) replaced by the chosen variant
    per task; returns (frame, footnote naming the protocol and the choices).

    selection 'tune': chosen on ``tune`` (the tuning split's rows, dataset named as in ``sub``),
    never on ``sub``'s scores; 'test': chosen on ``sub`` itself (the papers' best of sweep);
    None: 'tune' when ``tune`` has rows, else 'test'.  The selection metric is the spec's
    ``select_by``, else the first of its metrics with a value for the swept rows of the frame the
    choice is made on (LPIPS is unavailable offline, so PSNR then decides)."""
    from dipbench.sweeps import select_variants

    if "sweep_of" not in sub:
        return sub, ""
    swept = sub["sweep_of"].notna() & (sub["sweep_of"].astype(str) != "")
    if not swept.any():
        return sub, ""
    selection = selection or infer_selection(tune)
    src = sub if selection == "test" else (tune if tune is not None else sub.iloc[0:0])
    src_swept = src[src["sweep_of"].notna() & (src["sweep_of"].astype(str) != "")] if "sweep_of" in src else src.iloc[0:0]
    # a cost table (s/image, memory) has no quality metric of its own: the variant is picked by the
    # quality metrics the papers select by, never by wall time or memory
    costs = {"wall_per_image_s", "nfe_per_image", "vjp_per_image", "peak_memory_mb"}
    quality = [m for m in spec.get("metrics", ["psnr"]) if m not in costs]
    if not quality:
        from .figures import QUALITY_ORDER

        quality = list(QUALITY_ORDER)
    cands = [spec["select_by"]] if spec.get("select_by") else quality
    metric = next((m for m in cands if m in src_swept and pd.to_numeric(src_swept[m], errors="coerce").notna().any()),
                  None)
    names = sorted(set(sub.loc[swept, "sweep_of"].astype(str)))
    if metric is None:
        where = "on the tuning split (no tuning runs in this leaderboard)" if selection == "tune" and src_swept.empty \
            else f"(no {cands} value {'on the tuning split' if selection == 'tune' else ''})"
        return sub[~swept], f"Sweeps {names}: not shown, no variant could be chosen {where}."
    frame, tframe = sub.copy(), src.copy()  # with selection 'tune', no score of `sub` is read here
    tframe[metric] = pd.to_numeric(tframe[metric], errors="coerce")
    if selection == "test":
        frame = tframe
    out, choice = select_variants(frame, tframe if selection == "tune" else None, metric,
                                  higher_is_better(metric, spec.get("better")), selection)
    chosen = (out[out["variant"].astype(str) != out["solver"].astype(str)]
              [["solver", "task", "variant"]].drop_duplicates().sort_values(["solver", "task"]))
    picks = "; ".join(f"{r.solver} / {r.task}: {r.variant}" for r in chosen.itertuples())
    missing = sorted({(str(r.sweep_of), str(r.task)) for r in sub[swept].itertuples()} -
                     {(str(r.solver), str(r.task)) for r in chosen.itertuples()})
    note = selection_note(selection, metric, picks or "none", tune, str(sub["dataset"].iloc[0]) if len(sub) else None)
    if missing:
        note += " No choice (no score to choose by), not shown: " + ", ".join(f"{a} / {b}" for a, b in missing) + "."
    return out, note


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


def layout_frame(spec: dict, lay: dict, df: pd.DataFrame, dataset: str, tune: pd.DataFrame | None = None,
                 selection: str | None = None):
    """Resolve one layout on one dataset: (frame with task = column label and solver = row name,
    rows [(label, name)], columns [(label, label)], rows absent, tasks absent, sweep note).

    A layout has ``columns`` ({label: task}, [task] or "*") and ``rows`` ({label: solver}, [solver]
    or "*"), or ``row_groups`` ({group label: {column label: task}}): the same rows repeated per
    group, each group reading its own tasks under shared column labels (MAP-GA Table 3: masks as
    columns, one group of rows per noise level)."""
    seeds = lay.get("seeds", spec.get("seeds"))
    sub = _seed_filter(df[df["dataset"].astype(str) == dataset], seeds)
    tsub = None if tune is None else _seed_filter(tune[tune["dataset"].astype(str) == dataset], seeds)
    sub, sweep_note = select_sweeps(sub, spec, tsub, selection)
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
        o = sub["oracle"].astype(object).where(sub["oracle"].notna(), "").astype(str)
        for text in sorted(set(o[o != ""])):
            notes.append(f"ORACLE (uses the ground truth; not a fair comparison): {who(o == text)}: {text}.")
    return notes


def shown_metrics(frame: pd.DataFrame, metrics) -> tuple[list, str]:
    """(metrics with a value somewhere in the frame, a sentence naming the others once): a metric
    that no run of the table could compute here (LPIPS / FID offline) is left out rather than shown
    as a column of dashes; if none has a value, all are kept (the dashes then say why)."""
    from .tables import METRIC_LABELS, unavailable_reasons

    have = [m for m in metrics if m in frame and pd.to_numeric(frame[m], errors="coerce").notna().any()]
    if not have or len(have) == len(metrics):
        return list(metrics), ""
    reasons = unavailable_reasons(frame)
    gone = [m for m in metrics if m not in have]
    why = "; ".join(f"{METRIC_LABELS.get(m, m)}: {reasons[m]}" if m in reasons else
                    f"{METRIC_LABELS.get(m, m)}: not computed in these runs" for m in gone)
    return have, f"Not shown (no value in these runs): {why}."


MEMORY_KINDS = {
    "cuda_max_allocated": "torch's peak CUDA allocation of the job",
    "cpu_peak_rss_job_process": "peak resident set of the job's own process (includes the Python/torch runtime it started with)",
    "cpu_peak_rss": "peak resident set of the job's process",
    "cpu_peak_rss_shared_process": "peak resident set of the whole Snakemake process, shared with the jobs that ran beside it: NOT the job's own",
}


def memory_note(sub: pd.DataFrame, metrics) -> str:
    """What the peak-memory column measures (run.json memory_kind), so a shared figure is never
    read as a job's own."""
    if "peak_memory_mb" not in metrics or "memory_kind" not in sub:
        return ""
    kinds = sorted(set(sub["memory_kind"].dropna().astype(str)) - {""})
    if not kinds:
        return ""
    return "Peak memory (MiB): " + "; ".join(f"{MEMORY_KINDS.get(k, k)} [{k}]" for k in kinds) + "."


def render_grid_spec(spec, df, out_dir, tune=None, selection=None, collect=None):
    entries, reasons = [], []
    datasets = _sorted_unique(df["dataset"])
    for lay in spec.get("layouts", []):
        ds_sel = lay.get("datasets", "*")
        ds = datasets if ds_sel == "*" else [d for d in ds_sel if d in datasets]
        if not ds:
            reasons.append(f"datasets {ds_sel} not in the leaderboard")
            continue
        for d in ds:
            frame, rows, cols, rows_absent, cols_absent, sweep_note = layout_frame(spec, lay, df, d, tune, selection)
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
            metrics, not_shown = shown_metrics(frame, lay.get("metrics", spec.get("metrics", ["psnr"])))
            notes = protocol_notes(frame, rows)
            head = lay.get("title", spec.get("title", spec["id"]))
            title = f"{head} — {d} (mean ± std over {seeds} seed(s))"
            sel = sweep_note or "Selection: no swept solver in this table (each row is one configuration)."
            mem = memory_note(df[df["dataset"] == d], lay.get("metrics", spec.get("metrics", [])))
            extra = " ".join(b for b in (lay.get("what", ""), dropped, not_shown, sel, *notes, mem) if b)
            if lay.get("title"):  # an analogue (e.g. the embedded data): say what it mirrors, not the paper's setup
                caption = " ".join(b for b in (f"Mirrors {spec.get('paper', spec['id'])} "
                                               f"({spec.get('title', '')}).", extra) if b)
            else:
                caption = _caption(spec, extra)
            grid = build_grid(frame, rows, cols, metrics, title=title,
                              caption=caption, formats=spec.get("formats"),
                              better=spec.get("better"), spread=spec.get("spread", "std"), names=(spec["id"], d))
            stem = f"{spec['id']}__{d}"
            md, tex = _write(out_dir, stem, grid_markdown(grid), grid_latex(grid, f"tab:{stem}"))
            title_short = f"{spec.get('paper', spec['id'])}: {head} — {d}"
            entries.append((title_short, md, tex))
            if collect is not None:
                collect.append(dict(spec=spec, dataset=d, grid=grid, stem=stem, md=md, tex=tex, title=title_short,
                                    selection=sweep_note))
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


def hparams_long(spec, sub: pd.DataFrame) -> list[tuple[str, dict]]:
    """[(solver label, {parameter: {task or 'all tasks': value}})] from the runs' run.json params
    (the first seed of each task); a parameter with one value on every task shows it once."""
    lay = (spec.get("layouts") or [{}])[0]
    solvers, _ = _pairs(lay.get("rows", "*"), _sorted_unique(sub["solver"]))
    out = []
    for label, s in solvers:
        per_task = {}
        for t, g in sub[sub["solver"].astype(str) == s].groupby("task"):
            params = _run_params(g.sort_values("seed")["run_dir"].iloc[0])
            if params is not None:
                per_task[str(t)] = {k: _fmt_param(v) for k, v in params.items()}
        if not per_task:
            continue
        keys = list(dict.fromkeys(k for p in per_task.values() for k in p))
        table = {}
        for k in keys:
            vals = {t: p.get(k, "–") for t, p in per_task.items()}
            table[k] = {"all tasks": next(iter(vals.values()))} if len(set(vals.values())) == 1 else vals
        out.append((label, table))
    return out


def render_hparams_spec(spec, df, out_dir):
    """One small table per solver (parameter | value, or one value column per task where they
    differ) in Markdown; a long three-column table (solver, parameter, value) in LaTeX."""
    from .tables import _tex

    entries, reasons = [], []
    if "run_dir" not in df:
        return entries, ["the leaderboard has no run_dir column"]
    for d in _sorted_unique(df["dataset"]):
        sub = df[df["dataset"].astype(str) == d]
        solvers = hparams_long(spec, sub)
        if not solvers:
            reasons.append(f"{d}: no run.json found")
            continue
        title = f"{spec.get('title', 'Hyperparameters')} — {d}"
        md = [f"### {title}", "", _caption(spec), ""]
        lines = [r"\begin{longtable}{lll}", rf"\caption{{{_tex(title)}}}\label{{tab:{spec['id']}__{d}}}\\",
                 r"\toprule", r"Solver & Parameter & Value \\", r"\midrule", r"\endhead"]
        for label, table in solvers:
            cols = list(dict.fromkeys(t for v in table.values() for t in v))
            if cols != ["all tasks"]:
                cols = [c for c in cols if c != "all tasks"]
            rows = [[k] + [v.get(c, v.get("all tasks", "–")) for c in cols] for k, v in table.items()]
            md += [f"#### {label}", "",
                   pd.DataFrame(rows, columns=["Parameter"] + (["Value"] if cols == ["all tasks"] else cols))
                   .to_markdown(index=False, disable_numparse=True), ""]
            for i, (k, v) in enumerate(table.items()):
                val = v["all tasks"] if list(v) == ["all tasks"] else "; ".join(f"{t}: {x}" for t, x in v.items())
                lines.append(" & ".join([_tex(label) if i == 0 else "", _tex(k), _tex(val)]) + r" \\")
            lines.append(r"\midrule" if label != solvers[-1][0] else r"\bottomrule")
        lines.append(r"\end{longtable}")
        stem = f"{spec['id']}__{d}"
        md_p, tex_p = _write(out_dir, stem, "\n".join(md) + "\n", "\n".join(lines) + "\n")
        entries.append((f"{spec.get('paper', spec['id'])}: {spec.get('title', '')} — {d}", md_p, tex_p))
    return entries, reasons


def render_gmm_spec(spec, df, out_dir, results, collect=None):
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
    setup = ", ".join(f"{lab} = {meta[k]}" if lab else f"{meta[k]} samples"
                      for k, lab in (("d_y", "d_y"), ("sigma_y", "σ_y"), ("samples", "")) if k in meta)
    title = (f"{spec.get('title', 'GMM')} ({setup + '; ' if setup else ''}mean ± "
             f"{'95% CI' if spec.get('spread') == 'ci95' else 'std'} over {reps} replicates)")
    grid = build_grid(frame, rows, cols, spec.get("metrics", ["sw"]), title=title,
                      caption=_caption(spec, f"Source: `{found}`."), formats=spec.get("formats"),
                      better=spec.get("better"), spread=spec.get("spread", "std"))
    stem = f"{spec['id']}__gmm25"
    md, tex = _write(out_dir, stem, grid_markdown(grid), grid_latex(grid, f"tab:{stem}"))
    title_short = f"{spec.get('paper', spec['id'])}: {spec.get('title', '')}"
    if collect is not None:
        collect.append(dict(spec=spec, dataset="gmm25", grid=grid, stem=stem, md=md, tex=tex, title=title_short,
                            selection=""))
    return [(title_short, md, tex)], []


def render_specs(specs, df, out_dir, results, selection=None, collect=None):
    """Every spec rendered to tables/<id>__<dataset>.md/.tex.  ``df``: the leaderboard (the tuning
    split's rows, `<dataset>.tune`, are split off and used only to choose sweep variants);
    ``selection``: the config's protocol ('tune' or 'test'; None: 'tune' when there are tuning
    rows); ``collect``: a list that receives each grid table (for the HTML pages)."""
    out_dir = Path(out_dir)
    df, tune = split_frames(df)
    entries, skipped = [], []
    for spec in specs:
        kind = spec.get("kind", "grid")
        try:
            if kind == "hyperparams":
                e, r = render_hparams_spec(spec, df, out_dir)
            elif kind == "gmm_csv":
                e, r = render_gmm_spec(spec, df, out_dir, results, collect)
            else:
                e, r = render_grid_spec(spec, df, out_dir, tune, selection, collect)
        except Exception as ex:  # one bad spec must not take the report down; say so in index.md
            e, r = [], [f"error while rendering: {type(ex).__name__}: {ex}"]
        entries += e
        if not e:
            skipped.append((spec.get("id"), spec.get("paper", ""), "; ".join(r) or "nothing to show"))
    return entries, skipped
