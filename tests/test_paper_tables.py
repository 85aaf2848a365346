"""Every table of the three papers, from its paper grid: the grid validates (names, operators,
solver/operator pairs, feature keys, and every task/solver/dataset its specs ask for), and a
synthetic leaderboard with every planned run (dataset x task x solver entry x seed, random metric
values) renders each spec with exactly its rows, columns and metrics, no dropped name, a number in
every cell the grid runs, "not run" exactly where it does not, and the footnotes its protocol needs
(sweep choices, sigma_y told, projection, ORACLE options).

Names that other work adds (the consistency-model prior, MAP-GA with it, latent MGPS, the FFHQ
LDM, non-uniform blur, `accepts_init` on PGDM) are registered here as test-only stand-ins when the
registries lack them; once the real ones land, the same tests check the real registrations.
"""
from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from dipbench import config as C
from dipbench.config import ConfigError
from dipbench.paths import ROOT
from report.specs import layout_names, load_specs, render_specs, spec_grid_errors, spec_grids
from report.tables import higher_is_better, metric_label

PAPER = ROOT / "config" / "paper"
GRIDS = sorted(p.stem for p in PAPER.glob("*.yaml"))
SPECS = load_specs({})[0]
PAPER_SPECS = [s for s in SPECS if spec_grids(s)]


# ---------------------------------------------------------------------------- stand-ins
@pytest.fixture
def standins(monkeypatch):
    """Register what other work adds, only where it is missing (test-only, never in the package)."""
    import operators
    import priors
    import solvers
    from operators.base import Operator

    def add(reg, name, obj):
        if name not in reg:
            obj.registry_name = name
            monkeypatch.setitem(reg._items, name, obj)

    def stub(analog, name, **attrs):
        base = solvers.get(analog)
        return type(f"Stub_{name}", (solvers.Solver,), dict(defaults=dict(base.defaults), needs=base.needs, **attrs))

    add(solvers.SOLVERS, "map_ga", stub("map_ga_d", "map_ga", accepts_init=True))
    add(solvers.SOLVERS, "map_ga_np", stub("map_ga_d_np", "map_ga_np"))
    add(solvers.SOLVERS, "map_ga_d_pgdm", stub("map_ga_pgdm", "map_ga_d_pgdm"))
    add(solvers.SOLVERS, "latent_mgps", stub("mgps", "latent_mgps"))
    if not getattr(solvers.get("pgdm"), "accepts_init", False):
        monkeypatch.setattr(solvers.get("pgdm"), "accepts_init", True, raising=False)
    for name in ("cm_imagenet64", "ldm_ffhq256"):
        add(priors.PRIORS, name, lambda **kw: None)

    class NonUniformBlur(Operator):  # forward only, like the real one
        def forward(self, x):
            return x

    add(operators.OPERATORS, "deblur_nonlinear", lambda shape, **kw: NonUniformBlur(shape, shape))


def load_grid(name: str) -> dict:
    with open(PAPER / f"{name}.yaml") as f:
        return yaml.safe_load(f)


def validate_grid(cfg: dict) -> None:
    """Schema + names + spec checks, as Snakemake does before any job.  A dataset key the schema
    does not know yet (`consistency:`, added with the consistency-model prior) is checked by the
    names step alone until the schema has it."""
    from snakemake.utils import validate as sm_validate

    schema = yaml.safe_load(C.SCHEMA.read_text())
    known = set(schema["properties"]["datasets"]["additionalProperties"]["properties"])
    plain = copy.deepcopy(cfg)
    for d in plain["datasets"].values():
        for k in set(d) - known:
            d.pop(k)
    sm_validate(plain, str(C.SCHEMA), set_default=True)
    C.check_names(cfg)


# ---------------------------------------------------------------------------- synthetic leaderboard
COST = ("wall_per_image_s", "nfe_per_image", "vjp_per_image", "peak_memory_mb")


def full_leaderboard(cfg: dict, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d, t, s, k in C.planned_runs(cfg):
        e = C.solver_entry(cfg, s, t)
        told = e.get("sigma_y")
        meas = C.task_entry(cfg, t)["sigma_y"]
        row = dict(dataset=d, task=t, solver=s, seed=k, sweep_of=e.get("sweep_of"), status="ok", n_images=10,
                   n_diverged=0, n_failed=0, reason="", unavailable="", sigma_y=meas,
                   sigma_y_solver=meas if told is None else told, project=bool(e.get("project")),
                   oracle="; ".join(C.oracle_notes(e)))
        row.update({m: float(rng.uniform(0.1, 30.0)) for m in cfg["metrics"]})
        row.update({c: float(rng.uniform(1.0, 100.0)) for c in COST})
        rows.append(row)
    return pd.DataFrame(rows)


def md_table(path):
    """(header cells, [row cells]) of the Markdown table in a rendered file."""
    lines = [l for l in path.read_text().splitlines() if l.startswith("|")]
    split = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]  # noqa: E731
    return split(lines[0]), [split(l) for l in lines[2:]]


NUMBER = re.compile(r"^\*{0,2}-?\d+(\.\d+)?( ± \d+(\.\d+)?)?\*{0,2}$")


def expected_layout(spec, cfg):
    """The layout the grid must fill (its datasets are the grid's), as (layout, datasets)."""
    mine = [lay for lay in spec["layouts"] if layout_names(lay)[0] and set(layout_names(lay)[0]) <= set(cfg["datasets"])]
    assert mine, f"spec {spec['id']} has no layout on {sorted(cfg['datasets'])}"
    return mine[0], layout_names(mine[0])[0]


def check_rendered(spec, cfg, tmp_path):
    lb = full_leaderboard(cfg)
    entries, skipped = render_specs([spec], lb, tmp_path, str(tmp_path))
    lay, datasets = expected_layout(spec, cfg)
    assert not skipped, skipped
    assert [e[1] for e in entries] == [f"tables/{spec['id']}__{d}.md" for d in datasets]
    metrics = lay.get("metrics", spec.get("metrics"))
    rows = list(lay["rows"].items())
    if lay.get("row_groups"):
        groups = lay["row_groups"]
        col_labels = list(next(iter(groups.values())))
        for mapping in groups.values():
            assert list(mapping) == col_labels, "every row group must have the same columns"
        row_labels = [f"{g} · {rl}" for g in groups for rl, _ in rows]
        cell_task = {(f"{g} · {rl}", c): (rn, groups[g][c]) for g in groups for rl, rn in rows for c in col_labels}
    else:
        col_labels = list(lay["columns"])
        row_labels = [rl for rl, _ in rows]
        cell_task = {(rl, c): (rn, lay["columns"][c]) for rl, rn in rows for c in col_labels}
    one_group = len(col_labels) == 1 and len(metrics) > 1
    want_header = ["Solver"] + [metric_label(m, higher_is_better(m)) if one_group else
                                f"{c} {metric_label(m, higher_is_better(m))}" for c in col_labels for m in metrics]
    entries_of = C.solver_entries(cfg)
    runs = {(t, e.get("sweep_of") or s) for _, t, s, _ in C.planned_runs(cfg) for e in [entries_of[s]]}
    notes = []
    for d in datasets:
        md_path = tmp_path / "tables" / f"{spec['id']}__{d}.md"
        text = md_path.read_text()
        header, body = md_table(md_path)
        assert header == want_header, (spec["id"], header)
        assert [r[0] for r in body] == row_labels, (spec["id"], [r[0] for r in body])
        assert "dropped" not in text, text
        for r in body:
            for j, (c, m) in enumerate((c, m) for c in col_labels for m in metrics):
                solver, task = cell_task[r[0], c]
                ran = any(s == solver for _, s in runs) if task == "*" else (task, solver) in runs
                cell = r[1 + j]
                if ran:
                    assert NUMBER.match(cell), (spec["id"], r[0], c, m, cell)
                else:
                    assert cell == "–§", (spec["id"], r[0], c, m, cell)
        notes.append(text)
    # the protocol footnotes every row's runs need
    text = "\n".join(notes)
    for rl, rn in rows:
        for t in {task for (lab, _), (s, task) in cell_task.items() if s == rn}:
            if t == "*" or (t, rn) not in runs:
                continue
            name = next(s for s, e in entries_of.items() if (e.get("sweep_of") or s) == rn)
            e = C.solver_entry(cfg, name, t)
            if C.oracle_notes(e):
                assert "ORACLE" in text and rl in text, (spec["id"], rl)
            if e.get("project"):
                assert "Projected onto the measurement subspace" in text, (spec["id"], rl)
            if e.get("sigma_y") is not None and e["sigma_y"] != C.task_entry(cfg, t)["sigma_y"]:
                assert f"σ_y told to the solver: {e['sigma_y']:g}" in text, (spec["id"], rl)
            if e.get("sweep_of"):
                assert "best variant per task" in text and f"{rn} / " in text, (spec["id"], rl)
    return entries


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("grid", GRIDS)
def test_paper_grid_validates_before_any_job(grid, standins):
    """Every paper grid passes the checks Snakemake runs when it parses the Snakefile, including
    that each spec naming the grid finds its tasks, solvers and datasets there."""
    cfg = load_grid(grid)
    assert cfg["paper_grid"] == grid, f"config/paper/{grid}.yaml must say paper_grid: {grid}"
    validate_grid(cfg)
    assert not spec_grid_errors(SPECS, cfg)
    named = [s["id"] for s in SPECS if grid in spec_grids(s)]
    assert named, f"no table spec names the grid {grid}"


def test_every_spec_names_an_existing_grid():
    for s in PAPER_SPECS:
        for g in spec_grids(s):
            assert (PAPER / f"{g}.yaml").is_file(), (s["id"], g)


@pytest.mark.parametrize("spec", [s for s in PAPER_SPECS if s.get("kind", "grid") == "grid"], ids=lambda s: s["id"])
def test_paper_table_renders_with_the_papers_rows_columns_metrics(spec, standins, tmp_path):
    for g in spec_grids(spec):
        cfg = load_grid(g)
        if not any(layout_names(lay)[0] and set(layout_names(lay)[0]) <= set(cfg["datasets"])
                   for lay in spec["layouts"]):
            continue  # a spec filled by several grids: each grid fills its own layout
        check_rendered(spec, cfg, tmp_path / g)


def test_mgps_table1_gmm_renders_every_dimension_and_row(tmp_path):
    """MGPS Table 1 from the GMM grid: one column per dimension of the grid, every spec row."""
    from benchmarks.gmm_table import FULL

    spec = next(s for s in SPECS if s["id"] == "mgps_table1_gmm")
    g = load_grid("mgps_gmm")["gmm_table"]
    rng = np.random.default_rng(0)
    rows = [dict(solver=s, dim=d, d_y=g["d_y"], sigma_y=g["sigma_y"], replicate=r, samples=g["samples"],
                 sw=float(rng.uniform(0.2, 9)), wall_s=1.0, finite=True)
            for s in list(FULL) + ["prior", "posterior"] for d in g["dims"] for r in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "gmm_table.csv", index=False)
    entries, skipped = render_specs([spec], pd.DataFrame({"dataset": ["x"]}), tmp_path, str(tmp_path))
    assert not skipped
    header, body = md_table(tmp_path / entries[0][1])
    assert header[1:] == [f"d = {d} SW↓" for d in g["dims"]]
    labels = [r[0] for r in body]
    assert set(spec["rows"]) <= set(labels), set(spec["rows"]) - set(labels)
    assert all(NUMBER.match(c) for r in body for c in r[1:])


@pytest.mark.parametrize("mutate,needles", [
    (lambda c: c["tasks"].pop("sr_x2"), ["spec vml_map_table1", "sr_x2", "not in this grid's tasks"]),
    (lambda c: c["solvers"].pop("gdm"), ["spec vml_map_table1", "gdm", "not in this grid's solvers"]),
    (lambda c: c["datasets"].update(imagenet64x=c["datasets"].pop("imagenet64")),
     ["spec vml_map_table1", "no layout on this grid's datasets"]),
])
def test_a_spec_name_missing_from_its_grid_stops_validation(mutate, needles):
    """The check runs inside validation (before any job) and names the spec and the missing name."""
    cfg = load_grid("vml_map_imagenet64")
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        C.validate(cfg)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_row_groups_table_shows_each_noise_level(standins, tmp_path):
    """MAP-GA Table 3: the rows repeat per noise level and each group reads its own tasks."""
    cfg = load_grid("map_ga")
    spec = next(s for s in SPECS if s["id"] == "map_ga_table3")
    lb = full_leaderboard(cfg)
    lb.loc[(lb["task"] == "half_sy0.1") & (lb["solver"] == "map_ga_pgdm"), "fid"] = 123.0
    render_specs([spec], lb, tmp_path, str(tmp_path))
    header, body = md_table(tmp_path / "tables" / "map_ga_table3__imagenet64.md")
    row = next(r for r in body if r[0] == "σ_y = 0.1 · MAP-GA-PGDM")
    assert row[header.index("half FID↓")] == "123.0 ± 0.0"
    other = next(r for r in body if r[0] == "σ_y = 0.05 · MAP-GA-PGDM")
    assert not other[header.index("half FID↓")].startswith("123.0")


def test_single_seed_tables_use_seed_zero_only(tmp_path):
    """VML-MAP Table 1 is seed 0 (no spread), Table 5 the same cells over the 4 seeds."""
    cfg = load_grid("vml_map_imagenet64")
    lb = full_leaderboard(cfg)
    t1 = next(s for s in SPECS if s["id"] == "vml_map_table1")
    t5 = next(s for s in SPECS if s["id"] == "vml_map_table5")
    render_specs([t1, t5], lb, tmp_path, str(tmp_path))
    h1, b1 = md_table(tmp_path / "tables" / "vml_map_table1__imagenet64.md")
    h5, b5 = md_table(tmp_path / "tables" / "vml_map_table5__imagenet64.md")
    assert "±" not in " ".join(c for r in b1 for c in r[1:]) and all("±" in c for r in b5 for c in r[1:])
    ddrm0 = lb[(lb["solver"] == "ddrm--steps=20") & (lb["task"] == "inpaint_half") & (lb["seed"] == 0)]
    assert len(ddrm0) == 1


# ---------------------------------------------------------------------------- reported numbers
def test_shipped_reported_numbers_point_at_real_cells():
    """Each cell of report/reported/*.yaml names a spec that exists, and a dataset / task / solver
    row that the spec's grid runs; the metric is one the grid computes."""
    from report.reported import load_reported

    papers = load_reported()
    assert {p["file"] for p in papers} >= {"vml_map.yaml", "map_ga.yaml", "mgps.yaml"}
    by_id = {s["id"]: s for s in SPECS}
    for p in papers:
        for c in p["cells"]:
            spec = by_id[c["table"]]
            cfg = next(load_grid(g) for g in spec_grids(spec) if c["dataset"] in load_grid(g)["datasets"])
            assert c["task"] in cfg["tasks"] and c["metric"] in cfg["metrics"], c
            names = set(C.solver_entries(cfg)) | {e.get("sweep_of") for e in C.solver_entries(cfg).values()}
            assert c["solver"] in names, c


def test_reproduction_report_compares_and_counts(tmp_path):
    """Reported vs measured on a hand-made case: the mean over seeds after sweep selection, the
    difference, the tolerance verdict (absolute for LPIPS, relative for FID), and the index counts."""
    from report.reported import compare, load_reported, render

    d = tmp_path / "rep"
    d.mkdir()
    (d / "p.yaml").write_text(yaml.safe_dump(dict(paper="P", source="s", status="transcribed", cells=[
        dict(table="t", paper_table="Table 1", cell="A/x LPIPS", dataset="d", task="x", solver="a",
             metric="lpips_vgg", value=0.30),
        dict(table="t", paper_table="Table 1", cell="A/x FID", dataset="d", task="x", solver="a", metric="fid",
             value=50.0),
        dict(table="t", paper_table="Table 1", cell="B/x FID", dataset="d", task="x", solver="b", metric="fid",
             value=10.0),
        dict(table="t", paper_table="Table 1", cell="C/x FID", dataset="d", task="x", solver="c", metric="fid",
             value=10.0)])))
    rows = []
    for seed in (0, 1):
        rows.append(dict(dataset="d", task="x", solver="a", seed=seed, sweep_of=None, lpips_vgg=0.31 + 0.01 * seed,
                         fid=54.0))
        for v, f in (("b--steps=1", 13.0), ("b--steps=2", 10.5)):    # a sweep: the best variant is compared
            rows.append(dict(dataset="d", task="x", solver=v, seed=seed, sweep_of="b", lpips_vgg=0.1, fid=f))
    spec = dict(id="t", metrics=["fid"], layouts=[{"datasets": ["d"], "columns": ["x"], "rows": ["a", "b", "c"]}])
    papers = load_reported(d)
    cmp_ = compare([spec], pd.DataFrame(rows), papers).set_index("cell")
    assert math.isclose(cmp_.loc["A/x LPIPS", "ours"], 0.315) and math.isclose(cmp_.loc["A/x LPIPS", "diff"], 0.015)
    assert bool(cmp_.loc["A/x LPIPS", "reproduces"])                 # |0.015| <= 0.02
    assert bool(cmp_.loc["A/x FID", "reproduces"])                   # 4 <= 10% of 50
    assert math.isclose(cmp_.loc["B/x FID", "ours"], 10.5) and bool(cmp_.loc["B/x FID", "reproduces"])
    assert not bool(cmp_.loc["C/x FID", "measured"])
    written, index = render([spec], pd.DataFrame(rows), tmp_path / "out", papers)
    text = (tmp_path / "out" / index).read_text()
    assert "| P | transcribed | 4 | 3 | 3 |" in text
    md = (tmp_path / "out" / written[0][1]).read_text()
    assert "3 of 4 reported cells reproduce" in md and "not measured" in md
    bad = d / "q.yaml"
    bad.write_text(yaml.safe_dump(dict(paper="Q", cells=[dict(table="t", value="12")])))
    from report.reported import ReportedError

    with pytest.raises(ReportedError, match="q.yaml: cells\\[0\\] lacks"):
        load_reported(d)
