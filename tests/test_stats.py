"""Paired statistics of the report tables (report/stats.py): coverage of the interval on synthetic
scores with a known difference, Holm's correction, and the column comparison the tables use."""
import math

import numpy as np
import pandas as pd
import pytest

from report.stats import ALPHA, MIN_BOOT_IMAGES, bootstrap_mean, compare_column, holm, interval, paired_units


def _coverage(n_images, reps, delta=0.7, seed=123):
    """Fraction of `reps` synthetic draws whose interval holds the true paired difference `delta`.
    Per image a shared difficulty (both solvers see the same image) and independent noise."""
    rng = np.random.default_rng(seed)
    hit, methods = 0, set()
    for _ in range(reps):
        base = rng.normal(25.0, 3.0, n_images)
        a = base + delta + rng.normal(0.0, 1.0, n_images)
        b = base
        lo, hi, _, method = interval(a - b, rng=rng)
        hit += lo <= delta <= hi
        methods.add(method)
    return hit / reps, methods


def test_bootstrap_interval_covers_the_known_difference_about_95_percent():
    # 400 draws: binomial standard error 0.011 around 0.95; measured 0.9455 at 20 images over 2000 draws
    cov, methods = _coverage(n_images=20, reps=400)
    assert methods == {"bootstrap"}
    assert 0.92 <= cov <= 0.98, cov


def test_few_images_fall_back_to_t_with_the_same_coverage():
    cov, methods = _coverage(n_images=MIN_BOOT_IMAGES - 3, reps=400)
    assert methods == {"t"}
    assert 0.92 <= cov <= 0.98, cov


def test_interval_is_reproducible_and_shrinks_with_images():
    rng = np.random.default_rng(0)
    u = rng.normal(1.0, 1.0, 200)
    a = bootstrap_mean(u, rng=np.random.default_rng(5))
    assert a == bootstrap_mean(u, rng=np.random.default_rng(5))
    lo, hi, p = a
    assert lo < 1.0 < hi and p < 1e-3                         # mean 1, sd 1, 200 images: clearly nonzero
    lo20, hi20, _ = bootstrap_mean(u[:20], rng=np.random.default_rng(5))
    assert hi - lo < (hi20 - lo20) / 2                        # ~ 1/sqrt(n)


def test_holm_adjusts_step_down():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan, 0.2])[0]) and holm([np.nan, 0.2])[1] == pytest.approx(0.2)


def _frame(values):
    """(seed x image) frame as report.stats.per_image returns it."""
    v = np.asarray(values, dtype=float)
    return pd.DataFrame(v, index=range(v.shape[0]), columns=[f"im{i}" for i in range(v.shape[1])])


def test_column_comparison_marks_only_the_indistinguishable_rows():
    rng = np.random.default_rng(1)
    base = rng.normal(25.0, 3.0, (2, 30))                     # 2 seeds x 30 images, shared by all solvers
    cells = {"best": _frame(base + 2.0 + rng.normal(0, 0.3, base.shape)),
             "tie": _frame(base + 2.0 + rng.normal(0, 0.3, base.shape)),
             "worse": _frame(base + rng.normal(0, 0.3, base.shape)),
             "missing": None}
    res = compare_column(cells, "best", ("test", "col"))
    assert set(res) == {"tie", "worse"}
    assert res["worse"]["same"] is False and res["worse"]["hi"] < 0 and res["worse"]["p_adj"] < ALPHA
    assert res["worse"]["lo"] < -2.0 < res["worse"]["hi"] < -1.5             # row minus best: about -2
    assert res["tie"]["same"] is True and res["tie"]["lo"] < 0 < res["tie"]["hi"]
    assert res["worse"]["n"] == 30
    # same names, same numbers (the generator is seeded by the cell's names)
    assert compare_column(cells, "best", ("test", "col")) == res


def test_paired_units_average_seeds_and_skip_nonfinite():
    a = _frame([[1.0, 2.0, np.nan], [3.0, 4.0, np.nan]])
    b = _frame([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(paired_units(a, b), [1.5, 3.0])   # image 2 has no finite pair: left out
    assert math.isnan(bootstrap_mean(np.array([1.0]))[0])
