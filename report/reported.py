"""The papers' own numbers beside ours: a reproduction report.

Data: one YAML file per paper under ``report/reported/`` (``<paper>.yaml``)::

    paper: MAP-GA (arXiv 2407.20784v2, WACV 2025)
    source: where the numbers were read (version, section)
    status: transcribed | not transcribed (why)
    tolerance: {fid: {rel: 0.10}, lpips_vgg: {abs: 0.02}}   # optional, overrides TOLERANCE
    cells:
      - table: map_ga_table1        # spec id (config/tables.yaml) of the table that regenerates it
        paper_table: Table 1        # the paper's own table number
        cell: "row PGDM, column box50, FID"   # where in the paper's table
        dataset: imagenet64         # grid names (config/paper/*.yaml): dataset, task, solver row
        task: box50
        solver: pgdm
        metric: fid
        value: 12.3

``compare(specs, df)`` matches every reported cell with our measured mean (and spread) over seeds
for the same dataset / task / solver / metric, after the spec's sweep selection and seed filter,
and ``render(...)`` writes one comparison table per regenerated table
(``tables/<spec id>__reported.md``) and the index ``reproduction.md``: per table, how many cells
the paper reports, how many we measured, and how many agree within the stated tolerance.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from dipbench.io import write_text
from dipbench.paths import ROOT

REPORTED_DIR = ROOT / "report" / "reported"

# A measured mean reproduces a reported value when |ours - paper| <= abs, or <= rel * |paper|.
# Chosen as roughly the seed-to-seed spread the papers' own std tables show for 1k images (PSNR in
# dB, SSIM and LPIPS in their units, FID and sliced W relative); a paper file may override them.
TOLERANCE = {
    "psnr": {"abs": 0.5}, "ssim": {"abs": 0.02}, "ssim_skimage": {"abs": 0.02},
    "lpips_alex": {"abs": 0.02}, "lpips_vgg": {"abs": 0.02}, "fid": {"rel": 0.10}, "sw": {"rel": 0.10},
    "wall_per_image_s": {"rel": 0.25}, "peak_memory_mb": {"rel": 0.25},
}
CELL_KEYS = ("table", "paper_table", "cell", "dataset", "task", "solver", "metric", "value")


class ReportedError(ValueError):
    pass


def load_reported(directory=REPORTED_DIR) -> list[dict]:
    """Every paper file (sorted by name); each cell is checked for its keys and a numeric value."""
    out = []
    for path in sorted(Path(directory).glob("*.yaml")):
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
        cells = doc.get("cells") or []
        for i, c in enumerate(cells):
            missing = [k for k in CELL_KEYS if k not in c]
            if missing:
                raise ReportedError(f"{path.name}: cells[{i}] lacks {', '.join(missing)} (each cell needs "
                                    f"{', '.join(CELL_KEYS)})")
            if isinstance(c["value"], bool) or not isinstance(c["value"], (int, float)):
                raise ReportedError(f"{path.name}: cells[{i}].value must be a number, got {c['value']!r}")
        out.append(dict(file=path.name, paper=doc.get("paper", path.stem), source=doc.get("source", ""),
                        status=doc.get("status", ""), tolerance={**TOLERANCE, **(doc.get("tolerance") or {})},
                        cells=cells))
    return out


def within(ours: float, paper: float, tol: dict) -> bool:
    if not (math.isfinite(ours) and math.isfinite(paper)):
        return False
    d = abs(ours - paper)
    return ("abs" in tol and d <= tol["abs"]) or ("rel" in tol and d <= tol["rel"] * abs(paper))


def _tol_text(tol: dict) -> str:
    parts = ([f"±{tol['abs']:g}"] if "abs" in tol else []) + ([f"±{100 * tol['rel']:g}%"] if "rel" in tol else [])
    return " or ".join(parts) or "none"


def measured(spec: dict, df: pd.DataFrame, cell: dict):
    """(mean, std, seeds) of our runs for a reported cell, or None when not measured."""
    from .specs import _seed_filter, select_sweeps

    sub = df[(df["dataset"].astype(str) == str(cell["dataset"]))]
    if sub.empty or cell["metric"] not in sub:
        return None
    seeds = next((lay.get("seeds") for lay in spec.get("layouts", []) if lay.get("seeds")), spec.get("seeds"))
    sub, _ = select_sweeps(_seed_filter(sub, seeds), spec)
    sub = sub[(sub["task"].astype(str) == str(cell["task"])) & (sub["solver"].astype(str) == str(cell["solver"]))]
    vals = pd.to_numeric(sub[cell["metric"]], errors="coerce").dropna() if len(sub) else pd.Series([], dtype=float)
    vals = vals[vals.map(math.isfinite)]
    if vals.empty:
        return None
    return float(vals.mean()), (float(vals.std(ddof=1)) if len(vals) > 1 else math.nan), int(len(vals))


def compare(specs, df: pd.DataFrame, papers=None) -> pd.DataFrame:
    """One row per reported cell: the paper's value, ours, the difference and whether it reproduces."""
    papers = load_reported() if papers is None else papers
    by_id = {s["id"]: s for s in specs}
    rows = []
    for p in papers:
        for c in p["cells"]:
            spec = by_id.get(c["table"], {"id": c["table"], "layouts": []})
            got = measured(spec, df, c)
            tol = p["tolerance"].get(c["metric"], {})
            mean, std, n = got if got else (math.nan, math.nan, 0)
            rows.append(dict(paper=p["paper"], table=c["table"], paper_table=c["paper_table"], cell=c["cell"],
                             dataset=c["dataset"], task=c["task"], solver=c["solver"], metric=c["metric"],
                             reported=float(c["value"]), ours=mean, ours_std=std, seeds=n,
                             diff=mean - float(c["value"]) if got else math.nan,
                             tolerance=_tol_text(tol), measured=got is not None,
                             reproduces=bool(got) and within(mean, float(c["value"]), tol)))
    return pd.DataFrame(rows, columns=["paper", "table", "paper_table", "cell", "dataset", "task", "solver",
                                       "metric", "reported", "ours", "ours_std", "seeds", "diff", "tolerance",
                                       "measured", "reproduces"])


def _num(v, fmt=".4g"):
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def render(specs, df: pd.DataFrame, out_dir, papers=None) -> tuple[list, str]:
    """Write ``tables/<id>__reported.md`` per table with reported cells, and ``reproduction.md``.
    Returns ([(title, path)], index path relative to out_dir)."""
    out_dir = Path(out_dir)
    papers = load_reported() if papers is None else papers
    cmp_ = compare(specs, df, papers)
    written = []
    lines = ["# Reproduction report: the papers' numbers beside ours", "",
             "A cell reproduces when |ours − paper| is within the tolerance of its metric (absolute, or "
             "relative to the paper's value): " +
             "; ".join(f"{m} {_tol_text(t)}" for m, t in sorted(TOLERANCE.items())) + ". Ours is the mean over "
             "the seeds the regenerated table uses, after its sweep selection.", "",
             "| paper | status | cells reported | measured here | reproduce |", "|---|---|---|---|---|"]
    for p in papers:
        sub = cmp_[cmp_["paper"] == p["paper"]]
        lines.append(f"| {p['paper']} | {p['status'] or '–'} | {len(sub)} | {int(sub['measured'].sum())} | "
                     f"{int(sub['reproduces'].sum())} |")
    lines += ["", "Per regenerated table:", "", "| table | paper table | cells | measured | reproduce | comparison |",
              "|---|---|---|---|---|---|"]
    for tid, sub in cmp_.groupby("table", sort=True):
        rel = f"tables/{tid}__reported.md"
        body = sub[["cell", "dataset", "task", "solver", "metric", "reported", "ours", "ours_std", "seeds", "diff",
                    "tolerance", "reproduces"]].copy()
        for c in ("reported", "ours", "ours_std", "diff"):
            body[c] = body[c].map(_num)
        body["reproduces"] = [("yes" if r else "no") if m else "not measured"
                              for r, m in zip(sub["reproduces"], sub["measured"])]
        title = f"{tid}: {', '.join(sorted(set(sub['paper_table'])))} of {', '.join(sorted(set(sub['paper'])))}"
        md = "\n".join([f"### Reported vs measured — {title}", "",
                        f"{int(sub['reproduces'].sum())} of {len(sub)} reported cells reproduce "
                        f"({int(sub['measured'].sum())} measured here).", "",
                        body.to_markdown(index=False, disable_numparse=True), ""]) + "\n"
        write_text(out_dir / rel, md)
        written.append((title, rel))
        lines.append(f"| [{tid}]({rel}) | {', '.join(sorted(set(sub['paper_table'])))} | {len(sub)} | "
                     f"{int(sub['measured'].sum())} | {int(sub['reproduces'].sum())} | [table]({rel}) |")
    if cmp_.empty:
        lines.append("| – | – | 0 | 0 | 0 | – |")
    lines += ["", "Sources:", ""] + [f"- {p['paper']} (`report/reported/{p['file']}`): {p['source'] or '–'}"
                                      + (f" Status: {p['status']}" if p["status"] else "") for p in papers]
    write_text(out_dir / "reproduction.md", "\n".join(lines) + "\n")
    return written, "reproduction.md"
