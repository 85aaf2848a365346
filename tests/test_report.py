"""Report: the grid-table builder on a synthetic leaderboard, the specs file, and the report rule.

The builder is checked on hand-made numbers (means, stds, bold, missing / diverged / unavailable
cells) and on the structure of its LaTeX (booktabs rules, the same column count on every row),
since pdflatex is not installed here.  The report rule runs through Snakemake on the ci config,
on a synthetic results tree (real operators, fake reconstructions) in a temporary results root,
with only the report rule allowed, and must write every file it declares.
"""
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dipbench.paths import ROOT
from report.specs import load_specs, render_specs
from report.tables import build_grid, grid_latex, grid_markdown


def _lb():
    rows = []
    vals = {("a", "t1"): [1.0, 3.0], ("b", "t1"): [2.0, 2.0], ("a", "t2"): [5.0, 7.0], ("b", "t2"): [4.0, float("nan")]}
    for (s, t), v in vals.items():
        for seed, x in enumerate(v):
            rows.append(dict(dataset="d", task=t, solver=s, seed=seed, psnr=x, lpips_alex=float("nan"),
                             status="diverged" if (s, t) == ("b", "t2") and seed == 1 else "ok",
                             n_diverged=4 if (s, t) == ("b", "t2") and seed == 1 else 0,
                             unavailable="lpips_alex: weights not cached, run `prefetch`",
                             wall_per_image_s=0.5 if s == "a" else 0.1))
    return pd.DataFrame(rows)


def test_grid_means_stds_bold_and_footnotes():
    g = build_grid(_lb(), [("A", "a"), ("B", "b"), ("C", "c")], [("T1", "t1"), ("T2", "t2")],
                   ["psnr", "lpips_alex", "wall_per_image_s", "ssim"], title="t")
    c = g.cells
    assert c[("A", "T1", "psnr")]["text"] == "2.00 ± 1.41"          # mean 2, std (ddof 1) sqrt(2)
    assert c[("B", "T1", "psnr")]["text"] == "2.00 ± 0.00"
    assert c[("A", "T1", "psnr")]["bold"] and c[("B", "T1", "psnr")]["bold"]   # tie: both bold
    assert c[("A", "T2", "psnr")]["bold"] and not c[("B", "T2", "psnr")]["bold"]
    assert c[("B", "T2", "psnr")]["text"] == "4.00" and c[("B", "T2", "psnr")]["marks"] == "†"
    assert c[("A", "T1", "lpips_alex")]["text"] == "–" and c[("A", "T1", "lpips_alex")]["marks"] == "‡"
    assert c[("B", "T1", "wall_per_image_s")]["bold"]                 # costs: lower is better
    assert c[("C", "T1", "psnr")]["marks"] == "§"                     # not run
    assert c[("A", "T1", "ssim")]["marks"] == "¶"                     # not in the leaderboard
    md = grid_markdown(g)
    assert "**2.00 ± 1.41**" in md and "weights not cached" in md and "PSNR↑" in md
    for mark in "†‡§¶":
        assert any(n.startswith(mark) for n in g.notes)


def test_latex_is_booktabs_with_consistent_columns():
    g = build_grid(_lb(), [("A_1", "a"), ("B", "b")], [("T1", "t1"), ("T2", "t2")], ["psnr", "lpips_alex"], title="x_y")
    tex = grid_latex(g, "tab:x")
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    spec = re.search(r"\\begin\{tabular\}\{([lc]+)\}", tex).group(1)
    ncol = len(spec)
    assert ncol == 1 + 2 * 2
    body = [l for l in tex.splitlines() if l.endswith(r"\\")]
    for line in body:
        n = sum(int(k) for k in re.findall(r"\\multicolumn\{(\d+)\}", line))
        n += line.count("&") + 1 - len(re.findall(r"\\multicolumn", line))
        assert n == ncol, line
    assert r"\textbf{2.00 $\pm$ 1.41}" in tex and "A\\_1" in tex and r"\cmidrule(lr){2-3}" in tex
    assert tex.count("{") == tex.count("}")


def test_specs_file_loads_and_skips_absent_layouts(tmp_path):
    specs, src = load_specs({})
    ids = {s["id"] for s in specs}
    for need in ("vml_map_table1", "vml_map_table2", "vml_map_table3", "vml_map_table4_hparams", "vml_map_table5",
                 "vml_map_table6", "vml_map_table7", "vml_map_cost", "map_ga_table1", "map_ga_table2",
                 "map_ga_table3", "mgps_table1_gmm", "mgps_table2", "mgps_table3", "mgps_table7", "mgps_table8",
                 "mgps_table9", "mgps_table10"):
        assert need in ids
    entries, skipped = render_specs([s for s in specs if s["id"] in ("vml_map_table7", "vml_map_cost")],
                                    _lb(), tmp_path, str(tmp_path))
    assert [e[1] for e in entries] == ["tables/vml_map_cost__d.md"]
    assert skipped and skipped[0][0] == "vml_map_table7" and "celebahq256" in skipped[0][2]


def test_gmm_csv_spec(tmp_path):
    rows = [dict(solver=s, dim=d, d_y=1, sigma_y=0.5, replicate=r, samples=10, sw=v + r * 0.1, wall_s=0.1, finite=True)
            for s, v in (("mgps", 1.0), ("dps", 2.0)) for d in (10, 40) for r in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "gmm_table.csv", index=False)
    spec = next(s for s in load_specs({})[0] if s["id"] == "mgps_table1_gmm")
    entries, skipped = render_specs([spec], _lb(), tmp_path, str(tmp_path))
    md = (tmp_path / entries[0][1]).read_text()
    # 95% CI half-width over 3 replicates: t_{0.975, 2} * std / sqrt(3) = 4.303 * 0.1 / 1.732
    assert "**1.100 ± 0.248**" in md and "d = 40" in md and "95% CI" in md and not skipped


def test_sweep_rows_show_the_best_variant_per_task_with_a_footnote(tmp_path):
    """A swept solver (two (N, K) variants, sweep_of = 'vm') appears as one row 'vm' holding, per
    task, the variant with the best mean PSNR over seeds (t1: the (20, 50) one, t2: the (50, 20)
    one); the footnote names both choices; unswept rows are untouched."""
    rows = []
    for (solver, t, v) in [("vm--steps=20--iters=50", "t1", 30.0), ("vm--steps=50--iters=20", "t1", 20.0),
                           ("vm--steps=20--iters=50", "t2", 10.0), ("vm--steps=50--iters=20", "t2", 12.0),
                           ("b", "t1", 25.0), ("b", "t2", 11.0)]:
        for seed in (0, 1):
            rows.append(dict(dataset="d", task=t, solver=solver, seed=seed, psnr=v + seed, status="ok",
                             n_diverged=0, sweep_of=None if solver == "b" else "vm"))
    spec = dict(id="sw", metrics=["lpips_vgg", "psnr"],
                layouts=[{"datasets": ["d"], "columns": {"T1": "t1", "T2": "t2"}, "rows": {"VM": "vm", "B": "b"}}])
    entries, skipped = render_specs([spec], pd.DataFrame(rows), tmp_path, str(tmp_path))
    assert not skipped
    md = (tmp_path / entries[0][1]).read_text()
    vm = next(line for line in md.splitlines() if line.startswith("| VM"))
    assert "30.50" in vm and "12.50" in vm and "20.50" not in vm and "10.50" not in vm
    assert "vm / t1: vm--steps=20--iters=50" in md and "vm / t2: vm--steps=50--iters=20" in md
    assert "by mean psnr" in md                              # lpips_vgg absent: the next metric decides
    assert "25.50" in next(line for line in md.splitlines() if line.startswith("| B"))


CFG = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())


def _synthetic_results(res):
    """A results tree for the ci config: real operators and measurements, reconstructions = x + noise."""
    import operators
    from dipbench.io import write_csv, write_json, write_npz

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    ids = np.array([f"img{i}" for i in range(4)])
    rows = []
    for ds in CFG["datasets"]:
        for task, te in CFG["tasks"].items():
            params = dict(te.get("params", {}))
            op = operators.build(te["operator"], (3, 32, 32), **params)
            for seed in CFG["seeds"]:
                meas = res / "measurements" / ds / task / f"seed{seed}"
                write_npz(meas / "measurement.npz", x=x.numpy(), y=op(x).numpy(), ids=ids)
                write_json(meas / "meta.json", dict(operator=te["operator"], operator_params=params, x_shape=[3, 32, 32],
                                                    sigma_y=te["sigma_y"]))
                for k, solver in enumerate(CFG["solvers"]):
                    rd = res / "runs" / ds / task / solver / f"seed{seed}"
                    recon = (x + (0.05 + 0.05 * k) * torch.randn(x.shape, generator=g)).clamp(-1, 1)
                    write_npz(rd / "recon.npz", recon=recon.numpy(), ids=ids)
                    write_json(rd / "run.json", dict(params=CFG["solvers"][solver]["params"], measurement=str(meas)))
                    psnr = 20 - 3 * k + 0.1 * seed
                    rows.append(dict(dataset=ds, task=task, solver=solver, seed=seed, status="ok", n_images=4,
                                     n_diverged=0, psnr=psnr, ssim=0.8 - 0.1 * k, map_rel_err=0.1 * (k + 1),
                                     unavailable="", wall_per_image_s=0.1 * (k + 1), nfe_per_image=100.0,
                                     vjp_per_image=50.0 * (1 - k), peak_memory_mb=500.0, memory_kind="cpu_peak_rss",
                                     device="cpu", config_hash="x", run_dir=str(rd)))
    write_csv(res / "leaderboard.csv", pd.DataFrame(rows))
    if CFG.get("gmm_table"):  # the GMM toy's CSV (the gmm_table rule's output)
        write_csv(res / "gmm_table.csv", pd.DataFrame(
            [dict(solver=s, dim=10, d_y=1, sigma_y=0.5, replicate=r, samples=200, sw=1.0 + k + 0.1 * r,
                  wall_s=0.1, finite=True) for k, s in enumerate(["vml_map", "ddrm", "prior"]) for r in range(3)]))


@pytest.mark.skipif(not (ROOT / "config" / "ci.yaml").exists(), reason="no ci config")
def test_report_rule_on_ci_config_writes_every_declared_file(tmp_path):
    res = tmp_path / "results"
    _synthetic_results(res)
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/ci.yaml",
                        "--config", f"results={res}", "--allowed-rules", "report", "--",
                        str(res / "report" / "index.md")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = res / "report"
    index = (rep / "index.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", index)
    assert links and all((rep / l).is_file() for l in links), [l for l in links if not (rep / l).is_file()]
    for stem in ("skimage32_gauss", "vml_map_table1__skimage32_gauss", "vml_map_table4_hparams__skimage32_gauss",
                 "vml_map_cost__skimage32_gauss"):
        assert f"tables/{stem}.md" in links and f"tables/{stem}.tex" in links
    figs = {p.name for p in (rep / "figures").glob("*.png")}
    assert "skimage32_gauss__runtime_vs_quality.png" in figs and "skimage32_gauss__seeds_psnr.png" in figs
    assert {f"skimage32_gauss__{t}__grid.png" for t in CFG["tasks"]} <= figs
    assert "vml_map_table7" in index and "Skipped" in index                      # absent layout: a note
    t1 = (rep / "tables" / "vml_map_table1__skimage32_gauss.md").read_text()
    assert "embedded analogue of VML-MAP Table 1" in t1 and "ImageNet" not in t1.splitlines()[0]
    assert "reproduction.md" in links and (rep / "reproduction.md").is_file()
    hp = (rep / "tables" / "vml_map_table4_hparams__skimage32_gauss.md").read_text()
    assert "lr_scale" in hp and "eta_b" in hp                                       # from run.json params
    cost = (rep / "tables" / "vml_map_cost__skimage32_gauss.md").read_text()
    assert "s / image" in cost and "NFE" in cost and "peak MiB" in cost
