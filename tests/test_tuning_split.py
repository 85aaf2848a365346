"""The tuning split (dipbench/config.py): a swept solver's variant is chosen on images disjoint from
the test images, and the choice never reads a test image's score (selection: tune); the papers'
best-on-test protocol stays available as selection: test."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from dipbench import config as C
from dipbench import pipeline as P
from dipbench.config import ConfigError, validate
from report.specs import select_sweeps, split_frames

BASE = dict(
    results="results/unused", device="cpu", batch_size=2, seeds=[0, 1],
    datasets={"g": {"images": "skimage32", "n_images": 3, "prior": {"name": "gaussian_fit"}}},
    tasks={"inpaint_half": {"operator": "inpaint_half", "sigma_y": 0.05}},
    solvers={"ddrm": {"params": {"eta": 0.85, "eta_b": 1.0}, "sweep": {"steps": [2, 4]}},
             "dps": {"params": {"steps": 3}}},
    metrics=["psnr", "ssim"],
)


def cfg(**over):
    c = copy.deepcopy(BASE)
    for k, v in over.items():
        c[k] = v
    return validate(c) or c


def test_tuning_images_follow_the_test_images_and_never_overlap():
    c = cfg()
    test_ids, x = P.load_images(c, "g")
    tune_ids, xt = P.load_images(c, "g.tune")
    assert len(test_ids) == len(tune_ids) == 3 and not set(test_ids) & set(tune_ids)
    import data

    order = list(data.build("skimage32").ids)
    assert list(test_ids) + list(tune_ids) == order[:6]            # the next n_images of the dataset's order
    # with a seeded subset: the next images of the same seeded draw, still disjoint
    c2 = cfg(datasets={"g": {**BASE["datasets"]["g"], "subset_seed": 3, "tuning": {"n_images": 5}}})
    a, _ = P.load_images(c2, "g")
    b, _ = P.load_images(c2, "g.tune")
    assert len(b) == 5 and not set(a) & set(b) and set(a) | set(b) <= set(order)
    # an explicit list
    c3 = cfg(datasets={"g": {**BASE["datasets"]["g"], "tuning": {"ids": [order[10], order[12]]}}})
    assert list(P.load_images(c3, "g.tune")[0]) == [order[10], order[12]]


def test_bad_tuning_declarations_are_named():
    import data

    order = list(data.build("skimage32").ids)
    bad = copy.deepcopy(BASE)
    bad["datasets"]["g"]["tuning"] = {"ids": [order[0], order[20]]}          # order[0] is a test image
    with pytest.raises(ConfigError, match=r"datasets\.g\.tuning\.ids.*test images too"):
        validate(bad)
    bad = copy.deepcopy(BASE)
    bad["datasets"]["g"]["tuning"] = {"n_images": 40}                       # 3 + 40 > 24 images
    with pytest.raises(ConfigError, match=r"datasets\.g.*tuning split needs 40"):
        validate(bad)
    bad = copy.deepcopy(BASE)
    del bad["datasets"]["g"]["n_images"]                                    # every image is a test image
    with pytest.raises(ConfigError, match="selection: test"):
        validate(bad)
    bad = copy.deepcopy(BASE)
    bad["selection"] = "best"
    with pytest.raises(ConfigError, match="selection"):
        validate(bad)


def test_only_swept_entries_run_on_the_tuning_split():
    runs = C.planned_runs(cfg())
    tune = [r for r in runs if r[0] == "g.tune"]
    assert {s for _, _, s, _ in tune} == {"ddrm--steps=2", "ddrm--steps=4"}
    assert len(tune) == 2 * 2                                               # 2 variants x 2 seeds
    assert not [r for r in C.planned_runs(cfg(selection="test")) if r[0] == "g.tune"]


def _run_grid(c, res):
    done = set()
    for d, t, s, k in C.planned_runs(c):
        meas = res / "measurements" / d / t / f"seed{k}"
        if (d, t, k) not in done:
            P.measure(c, d, t, k, meas)
            done.add((d, t, k))
        rd = res / "runs" / d / t / s / f"seed{k}"
        P.solve_or_record(c, d, t, s, k, meas, rd, log=lambda *_: None)
        P.score(c, meas, rd)
    return P.aggregate(c, [res / "runs" / d / t / s / f"seed{k}" for d, t, s, k in C.planned_runs(c)],
                       res / "leaderboard.csv", log=lambda *_: None)


def test_selection_never_reads_a_test_images_score(tmp_path):
    """On the embedded data: the tuning runs scored other images than the test runs, and the chosen
    variant and the reported rows are the same whatever the test scores are (here: replaced by
    random numbers that favour the other variant, then removed altogether)."""
    c = cfg()
    lb = _run_grid(c, tmp_path)
    test, tune = split_frames(lb)
    assert set(test["dataset"]) == set(tune["dataset"]) == {"g"} and len(tune) == 4
    # the images behind the scores: disjoint
    ids = lambda rows: {i for rd in rows["run_dir"] for i in pd.read_csv(f"{rd}/scores.csv")["image_id"].astype(str)}
    assert not ids(test) & ids(tune)

    spec = {"id": "t", "metrics": ["psnr"]}
    shown, note = select_sweeps(test, spec, tune, "tune")
    chosen = set(shown.loc[shown["solver"] == "ddrm", "variant"])
    tune_mean = tune.groupby("solver")["psnr"].mean()
    assert chosen == {tune_mean.idxmax()}
    assert "tuning split" in note and tune_mean.idxmax() in note

    rng = np.random.default_rng(0)
    poisoned = test.copy()
    loser = tune_mean.idxmin()
    for m in ("psnr", "ssim"):
        poisoned[m] = rng.normal(size=len(poisoned))
        poisoned.loc[poisoned["solver"] == loser, m] = 1e6                  # on test, the other variant "wins"
    shown2, _ = select_sweeps(poisoned, spec, tune, "tune")
    assert set(shown2.loc[shown2["solver"] == "ddrm", "variant"]) == chosen
    # with no score column at all in the test rows, the choice is still made (it reads only tune)
    stripped = test.drop(columns=["psnr", "ssim"])
    shown3, _ = select_sweeps(stripped, {"id": "t", "metrics": ["psnr"]}, tune, "tune")
    assert set(shown3.loc[shown3["solver"] == "ddrm", "variant"]) == chosen
    keep = ["solver", "variant", "seed", "run_dir"]
    pd.testing.assert_frame_equal(shown[keep].reset_index(drop=True), shown3[keep].reset_index(drop=True))

    # the papers' protocol, on request: chosen on the (poisoned) test scores themselves
    shown4, note4 = select_sweeps(poisoned, spec, tune, "test")
    assert set(shown4.loc[shown4["solver"] == "ddrm", "variant"]) == {loser}
    assert "papers' protocol" in note4
