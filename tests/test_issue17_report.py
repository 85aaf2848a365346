"""Issue 17 item 9 (report side) and item 3's label: a cost table picks a sweep's variant by
quality, never by wall time; the SR measurement panel is the pseudo-inverse view; the peak-memory
column says what it measures."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from report.specs import memory_note, select_sweeps


def test_cost_table_picks_the_sweep_variant_by_quality_not_wall_time():
    rows = [dict(dataset="d", task="x", solver="s--steps=10", sweep_of="s", seed=0, psnr=20.0, wall_per_image_s=1.0),
            dict(dataset="d", task="x", solver="s--steps=100", sweep_of="s", seed=0, psnr=25.0, wall_per_image_s=9.0)]
    out, note = select_sweeps(pd.DataFrame(rows), {"metrics": ["wall_per_image_s", "peak_memory_mb"]})
    assert list(out["variant"]) == ["s--steps=100"] and "by mean psnr" in note
    out, _ = select_sweeps(pd.DataFrame(rows), {"metrics": ["wall_per_image_s"], "select_by": "wall_per_image_s"})
    assert list(out["variant"]) == ["s--steps=10"]  # an explicit select_by still wins


def test_memory_note_names_what_the_figure_is():
    df = pd.DataFrame({"memory_kind": ["cpu_peak_rss_job_process", "cpu_peak_rss_shared_process"]})
    note = memory_note(df, ["wall_per_image_s", "peak_memory_mb"])
    assert "job's own process" in note and "NOT the job's own" in note
    assert memory_note(df, ["psnr"]) == ""


def test_sr_measurement_panel_is_the_pseudo_inverse(tmp_path, monkeypatch):
    import report.figures as F
    from dipbench.io import write_json, write_npz

    x = torch.rand(1, 3, 32, 32) * 2 - 1
    import operators

    op = operators.build("sr_block", (3, 32, 32), factor=4)
    y = op(x)
    meas = tmp_path / "meas"
    write_npz(meas / "measurement.npz", x=x.numpy(), y=y.numpy(), ids=np.array(["a"]))
    write_json(meas / "meta.json", dict(operator="sr_block", operator_params={"factor": 4}, x_shape=[3, 32, 32]))
    run = tmp_path / "run"
    write_npz(run / "recon.npz", recon=x.numpy(), ids=np.array(["a"]))
    (run / "run.json").write_text(json.dumps({"measurement": str(meas)}))
    shown = {}

    def capture(fig, path):
        ax = fig.axes[1]  # row 0, column "measurement"
        shown["img"] = ax.get_images()[0].get_array()
        return path

    monkeypatch.setattr(F, "_save", capture)
    df = pd.DataFrame([dict(dataset="d", task="sr", solver="s", seed=0, run_dir=str(run))])
    F.qualitative_grid(df, "d", "sr", tmp_path / "g.png")
    want = ((op.pinv(y)[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    assert np.allclose(np.asarray(shown["img"]), want, atol=1e-5)
    assert float(np.asarray(shown["img"]).mean()) > 0.2  # not the nearly black adjoint y / f^2
