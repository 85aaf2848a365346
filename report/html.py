"""The HTML leaderboard: results/report/index.html and its pages (static files, no server).

Rendered with Jinja2 from report/templates/; report/static/ (the stylesheet and the table-sorting
script) is copied beside the pages.  Pages (under ``pages/``):

* one per dataset x task: the sortable table (mean ± seed std, the paired 95% interval against
  the best, the significance mark, cost columns), the runtime-vs-quality figure, the qualitative
  grid, a per-image viewer (original, measurement, every solver, with the per-image scores) and
  every run's provenance (run.json link, commit, config hash, checkpoint digest when recorded);
* one per rendered paper table (config/tables.yaml), one overview per dataset, and the
  reproduction page (the papers' reported numbers beside ours).

Links to runs point into the results tree (``../../runs/...`` from a page): the leaderboard is a
view of results/, so keep the folder whole when moving it.  Original and measurement pictures
are written under ``img/`` (the reconstructions are the runs' own ``recon/*.png``).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dipbench.io import write_text
from .tables import LOWER_BETTER, METRIC_LABELS, SAME, build_grid, ci_text, metric_label

HERE = Path(__file__).parent
TEMPLATES, STATIC = HERE / "templates", HERE / "static"
COST = ["wall_per_image_s", "nfe_per_image", "vjp_per_image", "peak_memory_mb"]


def env():
    import jinja2

    e = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(),
                           undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    e.filters["fmt"] = _fmt
    return e


def _fmt(v, f=".3g"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    try:
        return format(v, f)
    except (TypeError, ValueError):
        return str(v)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(s))


def _rel(target, start) -> str:
    from .figures import _resolve

    return Path(os.path.relpath(_resolve(target).resolve(), Path(start).resolve())).as_posix()


# ---------------------------------------------------------------------------- tables
def grid_table(grid, extra_cols=None) -> dict:
    """A Grid as rows of cells for the sortable HTML table: per (group, metric) a value column
    (mean ± seed std; data-sort = the mean) and, where the grid has paired statistics, a column
    with the interval of the difference to the best (data-sort = the mean difference)."""
    cols = []
    one_group = len(grid.groups) == 1
    for g, m in grid.columns():
        label = metric_label(m, grid.hib[m]) if one_group else f"{g} {metric_label(m, grid.hib[m])}"
        cols.append(dict(label=label, kind="num", key=(g, m, "v"), title="mean ± std over seeds"))
        has_ci = any(grid.cells[(r, g, m)].get("ci") for r in grid.rows)
        if has_ci:
            cols.append(dict(label=("" if one_group else f"{g} ") + "Δ vs best (95% CI)", kind="num", key=(g, m, "ci"),
                             title="paired bootstrap over images: interval of (this solver − the column's best)"))
    for c in extra_cols or []:
        cols.append(dict(label=c["label"], kind=c.get("kind", "text"), key=c["key"], title=c.get("title", "")))
    rows = []
    for r in grid.rows:
        cells = []
        for col in cols:
            key = col["key"]
            if isinstance(key, tuple) and key[2] == "v":
                c = grid.cells[(r, key[0], key[1])]
                cls = ["best"] if c["bold"] else []
                if c.get("same"):
                    cls.append("same")
                cells.append(dict(text=c["text"], marks=c["marks"], sort=_sortval(c.get("mean")), cls=" ".join(cls),
                                  title=_cell_title(c)))
            elif isinstance(key, tuple) and key[2] == "ci":
                c = grid.cells[(r, key[0], key[1])]
                text = ci_text(c) if c.get("ci") else ("best" if c.get("reference") else "–")
                cells.append(dict(text=text, marks="", sort=_sortval(c.get("diff", 0.0 if c.get("reference") else None)),
                                  cls="ci", title=_cell_title(c)))
            else:
                v = key(r)  # a function of the row: a ready cell dict
                cells.append(v if isinstance(v, dict) else dict(text=str(v), marks="", sort=str(v), cls="", title=""))
        rows.append(dict(label=r, cells=cells))
    return dict(cols=cols, rows=rows, notes=grid.notes, caption=grid.caption, title=grid.title)


def _sortval(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v))


def _cell_title(c: dict) -> str:
    bits = []
    if c.get("seeds"):
        bits.append(f"{c['seeds']} seed(s)")
    if c.get("n_images"):
        bits.append(f"{c['n_images']} paired images")
    if c.get("p_adj") is not None and c.get("ci"):
        bits.append(f"Holm-adjusted p = {c['p_adj']:.3g}")
    return ", ".join(bits)


# ---------------------------------------------------------------------------- images
def _save_png(path: Path, arr) -> None:
    import matplotlib.image as mpimg

    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim == 2:
        mpimg.imsave(path, np.clip(a, 0, 1), cmap="gray", vmin=0, vmax=1)
    else:
        mpimg.imsave(path, np.clip(a, 0, 1))


def write_inputs(meas_dir, out: Path, limit: int) -> dict:
    """{image id: (original png, measurement png or None)} for the first ``limit`` images of one
    measurement (written once; the measurement shown as report/degradations.py pictures it)."""
    import torch

    from dipbench.pipeline import load_measurement, operator_for
    from .degradations import _to_unit, measurement_picture

    meta, m = load_measurement(meas_dir)
    ids = m["ids"][:limit]
    x = m["x"][: len(ids)]
    out_map = {}
    op = None
    try:
        op = operator_for(meta)
    except Exception:  # noqa: BLE001 - a picture is never worth failing the report for
        op = None
    for k, i in enumerate(ids):
        o = out / "original" / f"{_slug(i)}.png"
        if x.ndim == 4 and not o.exists():
            _save_png(o, _to_unit(x[k]).numpy())
        mp = out / "measurement" / f"{_slug(i)}.png"
        if op is not None and not mp.exists():
            try:
                with torch.no_grad():
                    arr, kind = measurement_picture(op, m["y"][k: k + 1])
                if arr is not None:
                    _save_png(mp, arr.numpy())
            except Exception:  # noqa: BLE001
                pass
        out_map[i] = (o if o.exists() else None, mp if mp.exists() else None)
    return out_map


# ---------------------------------------------------------------------------- provenance
def checkpoint_digest(prior: dict | None) -> str:
    """The sha256 of the checkpoint behind a dataset's prior (the measurement's meta.json
    ``dataset_entry.prior``): the committed weights' ``.sha256`` sidecar (``edm_unet``), else the
    digest the checkpoint registry pins (priors/checkpoints.yaml); priors fitted or defined in code
    have none."""
    if not prior:
        return ""
    name, params = str(prior.get("name", "")), dict(prior.get("params") or {})
    try:
        if name == "edm_unet":
            from priors.edm_unet import WEIGHTS_DIR, read_expected_sha256

            w = Path(params.get("weights") or WEIGHTS_DIR / "edm_unet_skimage32.pt")
            got = read_expected_sha256(w)
            return f"{w.name}: {got[:16]}" if got else f"{w.name}: no sidecar digest"
        from dipbench.prefetch import load_registry

        reg = load_registry()
        key = params.get("checkpoint") or name
        if key in reg:
            sha = reg[key].get("sha256")
            return f"{reg[key]['file']}: {str(sha)[:16]}" if sha else f"{reg[key]['file']}: digest unknown (registry)"
    except Exception:  # noqa: BLE001 - provenance is shown as far as it can be read
        return "unreadable"
    return "none (prior fitted or defined in code)"


def provenance(run_dir) -> dict:
    """What a run's run.json says of where it came from (commit, config hash, checkpoints)."""
    from .figures import _resolve

    p = _resolve(run_dir) / "run.json"
    try:
        run = json.loads(p.read_text())
    except (OSError, ValueError):
        return dict(ok=False)
    git = run.get("git") or {}
    ck = run.get("checkpoints") or run.get("checkpoint") or run.get("checkpoint_digest") or run.get("checkpoint_sha256")
    if not ck and run.get("measurement"):
        try:
            meta = json.loads((_resolve(run["measurement"]) / "meta.json").read_text())
            ck = checkpoint_digest((meta.get("dataset_entry") or {}).get("prior"))
        except (OSError, ValueError):
            ck = None
    if isinstance(ck, dict):
        digests = "; ".join(f"{k}: {str(v.get('sha256', v))[:12] if isinstance(v, dict) else str(v)[:12]}"
                            for k, v in ck.items())
    elif isinstance(ck, list):
        digests = "; ".join(str(v.get("sha256", v))[:12] if isinstance(v, dict) else str(v)[:12] for v in ck)
    else:
        digests = str(ck) if ck else ""
    return dict(ok=True, status=run.get("status", ""), commit=str(git.get("commit") or "")[:10],
                dirty=bool(git.get("dirty")), config_hash=run.get("config_hash", ""), device=run.get("device", ""),
                checkpoints=digests or "none recorded", wall_s=run.get("wall_s"), start=run.get("start", ""),
                variant=run.get("solver", ""), measurement=run.get("measurement", ""))


# ---------------------------------------------------------------------------- pages
def task_page(e, df, tune, ds, task, out_dir, metrics_avail, selection, figures, viewer_images, pages):
    from .figures import _resolve
    from .specs import layout_frame
    from .stats import run_scores

    spec = {"id": "task", "metrics": metrics_avail}
    frame, rows, cols, _, _, note = layout_frame(spec, {"datasets": [ds], "columns": [task], "rows": "*"},
                                                 df, ds, tune, selection)
    if not rows or not cols:
        return None
    cost = [c for c in COST if c in frame and pd.to_numeric(frame[c], errors="coerce").notna().any()]
    grid = build_grid(frame, rows, cols, [m for m in metrics_avail] + cost, title=f"{ds} / {task}",
                      names=("task", ds))
    page_dir = out_dir / "pages"
    runs = {r: frame[frame["solver"].astype(str) == r].sort_values("seed") for r, _ in rows}

    def run_links(r):
        sub = runs[r]
        links = [dict(href=_rel(Path(rd) / "run.json", page_dir), text=f"seed {s}")
                 for s, rd in zip(sub["seed"], sub.get("run_dir", pd.Series(dtype=str))) if isinstance(rd, str)]
        variant = sub["variant"].iloc[0] if "variant" in sub and len(sub) else r
        return dict(text="", marks="", sort=str(variant), cls="runs", title="run.json of each seed",
                    links=links, variant=variant if variant != r else "")

    table = grid_table(grid, extra_cols=[dict(label="runs (run.json)", key=run_links, kind="text")])
    # provenance of every run
    prov = []
    for r, _ in rows:
        for s, rd in zip(runs[r]["seed"], runs[r].get("run_dir", pd.Series(dtype=str))):
            if isinstance(rd, str):
                p = provenance(rd)
                p.update(solver=r, seed=int(s), href=_rel(Path(rd) / "run.json", page_dir))
                prov.append(p)
    # the per-image viewer: first seed's measurement, every solver
    viewer = None
    seeds = sorted(int(s) for s in frame["seed"].unique()) if "seed" in frame else []
    if "run_dir" in frame and seeds:
        blocks, image_ids = [], []
        for seed in seeds:
            first = frame[frame["seed"] == seed]["run_dir"].iloc[0]
            meas = provenance(first).get("measurement")
            if not meas or not (_resolve(meas) / "measurement.npz").exists():
                continue
            img_dir = out_dir / "img" / _slug(ds) / _slug(task) / f"seed{seed}"
            inputs = write_inputs(_resolve(meas), img_dir, viewer_images)
            for iid, (o, mp) in inputs.items():
                if iid not in image_ids:
                    image_ids.append(iid)
                panels = [dict(label="original", src=_rel(o, page_dir) if o else None, scores=""),
                          dict(label="measurement", src=_rel(mp, page_dir) if mp else None, scores="")]
                for r, _ in rows:
                    sub = runs[r][runs[r]["seed"] == seed]
                    if sub.empty or not isinstance(sub["run_dir"].iloc[0], str):
                        panels.append(dict(label=r, src=None, scores="not run"))
                        continue
                    rd = sub["run_dir"].iloc[0]
                    png = Path(rd) / "recon" / f"{iid}.png"
                    sc = run_scores(rd)
                    txt = ""
                    if sc is not None and "image_id" in sc:
                        row = sc[sc["image_id"].astype(str) == iid]
                        if len(row):
                            txt = ", ".join(f"{METRIC_LABELS.get(m, m)} {float(row[m].iloc[0]):.3g}"
                                            for m in metrics_avail if m in row and pd.notna(row[m].iloc[0]))
                            if str(row["status"].iloc[0]) != "ok":
                                txt = str(row["status"].iloc[0])
                    panels.append(dict(label=r, src=_rel(png, page_dir) if _resolve(png).is_file() else None,
                                       scores=txt or "no finite reconstruction"))
                blocks.append(dict(seed=seed, image=iid, panels=panels))
        viewer = dict(seeds=seeds, images=image_ids, blocks=blocks) if blocks else None
    figs = [dict(src=_rel(p, page_dir), caption=cap) for cap, p in figures
            if p.name in (f"{ds}__runtime_vs_quality.png", f"{ds}__{task}__grid.png")]
    meta = _task_meta(frame)
    html = e.get_template("task.html").render(title=f"{ds} / {task}", ds=ds, task=task, table=table,
                                              selection_note=note, selection=selection, figures=figs,
                                              viewer=viewer, provenance=prov, meta=meta, root="../",
                                              pages=pages)
    path = page_dir / f"task__{_slug(ds)}__{_slug(task)}.html"
    write_text(path, html)
    best = _best_of(grid, metrics_avail)
    return dict(path=path, ds=ds, task=task, solvers=len(rows), seeds=len(seeds), best=best, meta=meta)


def _best_of(grid, metrics_avail):
    for m in metrics_avail:
        if m in LOWER_BETTER:
            continue
        g = grid.groups[0]
        best = [r for r in grid.rows if grid.cells[(r, g, m)]["bold"]]
        if best:
            c = grid.cells[(best[0], g, m)]
            return dict(metric=METRIC_LABELS.get(m, m), solver=", ".join(best), text=c["text"])
    return None


def _task_meta(frame) -> dict:
    """Operator, its parameters, sigma_y and the images of a task, from a measurement's meta.json."""
    from .figures import _resolve

    if "run_dir" not in frame or frame.empty:
        return {}
    p = provenance(frame["run_dir"].iloc[0]).get("measurement")
    try:
        meta = json.loads((_resolve(p) / "meta.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    de = meta.get("dataset_entry") or {}
    return dict(operator=meta.get("operator", ""), params=json.dumps(meta.get("operator_params", {}), sort_keys=True),
                sigma_y=meta.get("sigma_y"), n_images=meta.get("n_images"), shape="×".join(map(str, meta.get("x_shape", []))),
                prior=(de.get("prior") or {}).get("name", ""), images=de.get("images", ""))


def build_html(cfg, df, tune, out_dir, overviews, tables, skipped, figures, selection, specs, missing,
               leaderboard) -> list[Path]:
    """Write index.html, the pages and the static files; returns the paths written."""
    from .stats import describe

    out_dir = Path(out_dir)
    e = env()
    written = []
    for d in ("pages", "img", "static"):  # wholly the HTML build's: no page of an earlier build survives
        shutil.rmtree(out_dir / d, ignore_errors=True)
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    for f in sorted(STATIC.iterdir()):
        if f.is_file():
            dst = out_dir / "static" / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst)
            written.append(dst)
    rcfg = cfg.get("report") or {}
    viewer_images = int(rcfg.get("viewer_images", 16))
    metric_names = [m for m in cfg.get("metrics", []) if m not in LOWER_BETTER]
    page_dir = out_dir / "pages"
    pages = []
    # paper tables
    for t in tables:
        path = page_dir / f"table__{_slug(t['stem'])}.html"
        html = e.get_template("table.html").render(title=t["title"], table=grid_table(t["grid"]), root="../",
                                                   md=f"../{t['md']}", tex=f"../{t['tex']}", spec=t["spec"],
                                                   dataset=t["dataset"])
        write_text(path, html)
        written.append(path)
        pages.append(dict(kind="paper", title=t["title"], href=f"pages/{path.name}"))
    # dataset overviews
    ds_pages = []
    for o in overviews:
        path = page_dir / f"dataset__{_slug(o['dataset'])}.html"
        html = e.get_template("dataset.html").render(title=f"{o['dataset']}: overview", root="../",
                                                     tables=[grid_table(g) for g in o["grids"]], notes=o["notes"],
                                                     md=f"../{o['md']}", tex=f"../{o['tex']}")
        write_text(path, html)
        written.append(path)
        ds_pages.append(dict(dataset=o["dataset"], href=f"pages/{path.name}"))
    # dataset x task
    task_pages = []
    for ds in sorted(df["dataset"].astype(str).unique()):
        sub = df[df["dataset"].astype(str) == ds]
        avail = [m for m in metric_names if m in sub and pd.to_numeric(sub[m], errors="coerce").notna().any()]
        for task in sorted(sub["task"].astype(str).unique()):
            try:
                info = task_page(e, df, tune, ds, task, out_dir, avail, selection, figures, viewer_images, pages)
            except Exception as ex:  # noqa: BLE001 - one page must not take the report down
                print(f"[report] page {ds}/{task} skipped: {type(ex).__name__}: {ex}")
                info = None
            if info:
                written.append(info["path"])
                info["href"] = f"pages/{info['path'].name}"
                task_pages.append(info)
    # reproduction
    from .reported import compare, load_reported

    papers = load_reported()
    cmp_ = compare(specs, pd.concat([df, tune.assign(dataset=tune["dataset"].astype(str) + ".tune")])
                   if len(tune) else df, papers, selection)
    path = page_dir / "reproduction.html"
    html = e.get_template("reproduction.html").render(title="Reproduction: the papers' numbers beside ours", root="../",
                                                      papers=papers, rows=cmp_.to_dict("records"),
                                                      selection=selection)
    write_text(path, html)
    written.append(path)
    fig_links = [dict(caption=c, href=p.relative_to(out_dir).as_posix()) for c, p in figures]
    html = e.get_template("index.html").render(
        title="dipbench leaderboard", root="", selection=selection, stats=describe(), missing=missing,
        task_pages=task_pages, ds_pages=ds_pages, pages=pages, skipped=skipped, figures=fig_links,
        n_runs=len(df), n_tune=len(tune), leaderboard=_rel(leaderboard, out_dir), reproduction="pages/reproduction.html",
        n_reported=len(cmp_), n_measured=int(cmp_["measured"].sum()) if len(cmp_) else 0,
        n_reproduce=int(cmp_["reproduces"].sum()) if len(cmp_) else 0, markdown="index.md",
        perf="perf.md" if (out_dir / "perf.md").is_file() else None, same=SAME)
    write_text(out_dir / "index.html", html)
    written.append(out_dir / "index.html")
    return written
