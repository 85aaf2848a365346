"""Issue 17 items 1-4 and 7 end to end on a tiny local workflow (two folder datasets of 32x32
images, the embedded U-Net prior from a copied weights file, DDRM at 3 steps):

* item 1: swapping the checkpoint file or the data folder makes `snakemake -n` plan the affected
  jobs again; run.json records the checkpoint's sha256 and the image list's digest;
* item 2: the measure step never builds a network (a prior whose checkpoint is missing measures);
* item 3: each solve job's peak memory is its own (two jobs of different sizes differ);
* item 4: with --keep-going a failing dataset still yields leaderboard.csv and the report, the
  failure marked with its reason, the traceback in the failing rule's log;
* item 7: n_images beyond the dataset is refused before any job, nothing is deleted; re-made
  results are kept under results/superseded/.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dipbench import inputs as I

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "priors" / "weights" / "edm_unet_skimage32"


def snakemake(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def write_images(folder: Path, n: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{k:05d}.png")


def copy_weights(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for ext in (".pt", ".train.yaml", ".sha256"):
        shutil.copy(str(WEIGHTS) + ext, dest / f"w{ext}")
    return dest / "w.pt"


def make_config(tmp: Path, root_a: Path, weights: Path, bad_root: Path | None = None) -> dict:
    prior = {"name": "edm_unet", "params": {"weights": str(weights), "verify": False}}
    ds = lambda root, n: {"images": "ffhq256", "params": {"root": str(root), "n": 8, "size": 32},
                          "n_images": n, "prior": prior}
    cfg = {"results": str(tmp / "res"), "device": "cpu", "batch_size": 8, "seeds": [0],
           "datasets": {"small": ds(root_a, 1), "big": ds(root_a, 8)},
           "tasks": {"inpaint_half": {"operator": "inpaint_half", "sigma_y": 0.05}},
           "solvers": {"ddrm": {"params": {"steps": 3}}}, "metrics": ["psnr"]}
    if bad_root is not None:
        cfg["datasets"]["broken"] = ds(bad_root, 1)
    return cfg


def dump(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def planned(out: str) -> dict:
    """rule -> job count from `snakemake -n`'s job stats table."""
    counts, on = {}, False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            on = True
            continue
        if on and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    root_a, root_b, bad = tmp / "imgs_a", tmp / "imgs_b", tmp / "imgs_bad"
    write_images(root_a, 8, 0)
    write_images(root_b, 8, 1)
    bad.mkdir()
    (bad / "00000.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    weights = copy_weights(tmp / "ckpt")
    cfg = make_config(tmp, root_a, weights, bad_root=bad)
    r = snakemake("--keep-going", "--configfile", str(dump(cfg, tmp / "cfg.yaml")))
    return dict(tmp=tmp, cfg=cfg, weights=weights, root_a=root_a, root_b=root_b, r=r,
                res=Path(cfg["results"]))


def test_keep_going_failure_still_yields_leaderboard_and_report(ran):
    r, res = ran["r"], ran["res"]
    assert r.returncode != 0  # the broken dataset's measure job failed
    import pandas as pd

    lb = pd.read_csv(res / "leaderboard.csv")
    assert sorted(lb["dataset"]) == ["big", "broken", "small"]
    broken = lb[lb["dataset"] == "broken"].iloc[0]
    assert broken["status"] == "failed" and "measure failed" in broken["reason"]
    assert "00000" in broken["reason"] and "cannot read image" in broken["reason"]
    assert (lb[lb["dataset"] != "broken"]["status"] == "ok").all()
    assert lb[lb["dataset"] != "broken"]["psnr"].notna().all()
    index = (res / "report" / "index.md").read_text()
    assert "Partial results" in index and "broken/inpaint_half/ddrm/seed0" in index
    log = (res / "logs" / "measure" / "broken" / "inpaint_half" / "seed0.log").read_text()
    assert "Traceback (most recent call last)" in log and "InputError" in log


def test_run_json_records_checkpoint_digest_and_image_list(ran):
    from dipbench.integrity import sha256_file

    run = json.loads((ran["res"] / "runs/small/inpaint_half/ddrm/seed0/run.json").read_text())
    (ck,) = run["inputs"]["checkpoints"]
    assert ck["path"] == str(ran["weights"]) and ck["sha256"] == sha256_file(ran["weights"])
    assert run["inputs"]["images"]["n"] == 1
    assert run["inputs"]["images"]["ids_sha256"] == I.ids_digest(["00000"])
    assert run["inputs"]["images"]["root"] == str(ran["root_a"].resolve())
    meta = json.loads((ran["res"] / "measurements/big/inpaint_half/seed0/meta.json").read_text())
    assert meta["images"]["ids_sha256"] == I.ids_digest([f"{k:05d}" for k in range(8)])


def test_solve_peak_memory_is_the_jobs_own(ran):
    runs = {d: json.loads((ran["res"] / f"runs/{d}/inpaint_half/ddrm/seed0/run.json").read_text())
            for d in ("small", "big")}
    for run in runs.values():
        assert run["memory_kind"] == "cpu_peak_rss_job_process"
        assert 50 < run["memory_baseline_mb"] < run["peak_memory_mb"] < 4000
    # 8 images in one batch against 1: the bigger job's own peak is higher
    assert runs["big"]["peak_memory_mb"] > runs["small"]["peak_memory_mb"] + 5


def test_swapped_checkpoint_or_data_folder_plans_the_affected_jobs(ran):
    tmp, cfg = ran["tmp"], json.loads(json.dumps(ran["cfg"]))
    del cfg["datasets"]["broken"]
    path = dump(cfg, tmp / "cfg_ok.yaml")
    r = snakemake("-n", "--configfile", str(path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "solve" not in planned(r.stdout) and "measure" not in planned(r.stdout), r.stdout[-3000:]
    # drop in another checkpoint at the same path (same architecture, one weight changed)
    import torch

    w = ran["weights"]
    saved = w.read_bytes()
    state = torch.load(w, weights_only=True)
    k = next(iter(state))
    state[k] = state[k] + 1e-3
    torch.save(state, w)
    try:
        plan = planned(snakemake("-n", "--configfile", str(path)).stdout)
        assert plan.get("solve") == 2 and "measure" not in plan, plan
        # run it: the old results are kept under superseded/, the new run.json has the new digest
        old_run = (ran["res"] / "runs/small/inpaint_half/ddrm/seed0/run.json").read_text()
        r = snakemake("--configfile", str(path))
        assert r.returncode == 0, r.stderr[-3000:]
        assert "the old ones are kept in" in r.stderr
        (kept,) = (ran["res"] / "superseded").glob("*/runs/small/inpaint_half/ddrm/seed0/run.json")
        assert kept.read_text() == old_run
        new_run = json.loads((ran["res"] / "runs/small/inpaint_half/ddrm/seed0/run.json").read_text())
        assert new_run["inputs"]["checkpoints"][0]["sha256"] != json.loads(old_run)["inputs"]["checkpoints"][0]["sha256"]
    finally:
        w.write_bytes(saved)
    # point one dataset at another data folder
    cfg["datasets"]["small"]["params"]["root"] = str(ran["root_b"])
    plan = planned(snakemake("-n", "--configfile", str(dump(cfg, tmp / "cfg_b.yaml"))).stdout)
    assert plan.get("measure") == 1 and plan.get("solve") >= 1, plan


def test_n_images_beyond_the_dataset_is_refused_before_any_job(ran):
    tmp, cfg = ran["tmp"], json.loads(json.dumps(ran["cfg"]))
    del cfg["datasets"]["broken"]
    cfg["datasets"]["big"]["n_images"] = 9
    before = {p: p.stat().st_mtime_ns for p in ran["res"].glob("measurements/**/*") if p.is_file()}
    r = snakemake("--configfile", str(dump(cfg, tmp / "cfg_9.yaml")))
    assert r.returncode != 0
    assert "datasets.big.n_images: 9 images requested" in r.stderr and "has 8" in r.stderr
    after = {p: p.stat().st_mtime_ns for p in ran["res"].glob("measurements/**/*") if p.is_file()}
    assert before == after and before


def test_measure_does_not_build_the_network(tmp_path):
    from dipbench import pipeline

    write_images(tmp_path / "imgs", 2, 3)
    cfg = make_config(tmp_path, tmp_path / "imgs", tmp_path / "no-such-checkpoint.pt")
    pipeline.measure(cfg, "small", "inpaint_half", 0, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["exact_map"] is False and meta["n_images"] == 1
    # an analytic prior still gets its exact MAP (built: no checkpoint, no network)
    assert I.prior_is_exact({"datasets": {"g": {"prior": {"name": "gaussian_fit"}}}}, "g")
    assert not I.prior_is_exact(cfg, "small")
    assert I.prior_wants_labels({"datasets": {"i": {"prior": {"name": "edm_imagenet64"}}}}, "i")
    assert not I.prior_wants_labels(
        {"datasets": {"i": {"prior": {"name": "edm_imagenet64", "params": {"class_label": 3}}}}}, "i")


def test_superseded_results_are_kept(tmp_path):
    from dipbench import supersede

    res = tmp_path / "res"
    f = res / "measurements/d/t/seed0/meta.json"
    f.parent.mkdir(parents=True)
    f.write_text("{}")
    (res / "runs/d/t/s/seed0/recon").mkdir(parents=True)
    (res / "runs/d/t/s/seed0/recon/a.png").write_bytes(b"x")
    where = supersede.keep([f, res / "runs/d/t/s/seed0/recon", tmp_path / "absent"], res, stamp="T")
    assert where == res / "superseded" / "T"
    f.unlink()  # what Snakemake does when it re-makes the job
    assert (where / "measurements/d/t/seed0/meta.json").read_text() == "{}"
    assert (where / "runs/d/t/s/seed0/recon/a.png").read_bytes() == b"x"
    assert supersede.keep([tmp_path / "absent"], res) is None
