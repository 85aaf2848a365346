"""Exact-oracle metrics on analytic priors."""
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
