"""benchmarks/diagnose_map.py runs end to end on the committed U-Net: one image, a tiny budget,
one trace row per level, and the measurement it rebuilds is the pipeline's."""
from __future__ import annotations

import pytest
import torch

from benchmarks import diagnose_map


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_diagnose_map_smoke(capsys):
    diagnose_map.main(["--prior", "edm_unet", "--tasks", "sr_x2", "--solvers", "vml_map,map_ga_d",
                       "--images", "rocket_thumb", "--params", '{"steps": 3, "iters": 1}'])
    out = capsys.readouterr().out
    assert out.count("PSNR [") == 2 and "residual" in out
    rows = [ln for ln in out.splitlines() if ln.strip() and ln.strip()[0].isdigit()]
    assert len(rows) == 2 * 3                                # one row per level, per solver


def test_diagnose_map_rebuilds_the_pipeline_measurement(tmp_path):
    """The y it rebuilds for a subset of images equals the measure step's y for those images."""
    from dipbench import pipeline

    cfg = diagnose_map.default_config()
    _, y, _, sy, ids = diagnose_map.measurement(cfg, "edm_unet", "sr_x2", 0, ["rocket_thumb"])
    cfg = {**cfg, "datasets": {"skimage32_unet": cfg["datasets"]["skimage32_unet"]}}
    pipeline.measure(cfg, "skimage32_unet", "sr_x2", 0, tmp_path)
    _, m = pipeline.load_measurement(tmp_path)
    i = m["ids"].index("rocket_thumb")
    assert ids == ["rocket_thumb"] and torch.allclose(m["y"][i:i + 1], y) and sy == 0.05
