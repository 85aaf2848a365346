"""The full-size smoke grid (config/smoke256.yaml) end to end on the CPU: the ADM FFHQ-256
architecture with random weights written in the release format where prefetch would put them
(under the grid's own resources root), 256x256 images, two solvers (DDRM: SVD; DPS: a VJP through
the U-Net), batch 2, to the report.  Slow (minutes on 2 cores): python -m pytest -m slow tests/test_paper_smoke.py
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_paper_smoke_grid(tmp_path):
    from benchmarks.random_checkpoint import write

    cfg = yaml.safe_load((ROOT / "config" / "smoke256.yaml").read_text())
    ck = tmp_path / "resources" / "checkpoints" / "ffhq_10m.pt"
    write("adm_ffhq256", ck)
    cfg["results"] = str(tmp_path / "res")
    cfg["datasets"]["skimage256"]["prior"]["params"]["path"] = str(ck)
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
                        str(tmp_path / "smoke.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "res"
    import pandas as pd

    lb = pd.read_csv(res / "leaderboard.csv")
    assert sorted(lb["solver"]) == ["ddrm", "dps"] and (lb["n_images"] == 2).all()
    assert lb["psnr"].notna().all()  # random weights: finite numbers, not good ones
    for s in ("ddrm", "dps"):
        run = json.loads((res / f"runs/skimage256/sr4/{s}/seed0/run.json").read_text())
        assert run["status"] in ("ok", "diverged") and run["batch_size"] == 2
        assert run["inputs"]["checkpoints"][0]["path"] == str(ck) and len(run["inputs"]["checkpoints"][0]["sha256"]) == 64
        assert run["memory_kind"] in ("cpu_peak_rss_job_process", "cpu_peak_rss", "cuda_max_allocated")
        assert 0 < run["peak_memory_mb"] < 16000
        recon = np.load(res / f"runs/skimage256/sr4/{s}/seed0/recon.npz")["recon"]
        assert recon.shape == (2, 3, 256, 256)
    assert run["vjp_per_image"] > 0  # dps backpropagates through the 256x256 U-Net
    meta = json.loads((res / "measurements/skimage256/sr4/seed0/meta.json").read_text())
    assert meta["x_shape"] == [3, 256, 256] and meta["y_shape"] == [3, 64, 64] and not meta["exact_map"]
    assert (res / "report" / "index.md").exists()
