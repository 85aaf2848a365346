"""Exact-oracle metrics on analytic priors.

``map_rel_err`` compares each reconstruction with the exact MAP stored by the measure step.

No ``posterior_sw`` here, on purpose: a sliced Wasserstein distance between a sampler's output and
the exact posterior needs many samples *of the same measurement*, while the image pipeline makes
one reconstruction per measurement and seed (the images of a run are different measurements, the
seeds are separate runs).  Pooling across images or seeds would compare mixtures of different
posteriors.  The Gaussian-mixture SW table (MGPS Table 1) is therefore produced by
``benchmarks/gmm_table.py`` (many samples of one y per replicate); the report renders its CSV
(spec ``mgps_table1_gmm`` in config/tables.yaml).
"""
from __future__ import annotations

import numpy as np

from .base import Metric, MetricUnavailable
from .registry import register


@register("map_rel_err")
class MapRelErr(Metric):
    """||x_hat - x_MAP|| / ||x_MAP||, x_MAP the exact MAP of the analytic prior."""
    name, higher_is_better = "map_rel_err", False

    def per_image(self, recon, truth, ctx):
        x_map = ctx.get("x_map")
        if x_map is None:
            raise MetricUnavailable("the prior has no exact MAP (not an analytic prior)")
        d = (recon.double() - x_map.double()).reshape(len(recon), -1).norm(dim=1)
        return (d / x_map.double().reshape(len(recon), -1).norm(dim=1)).numpy()
