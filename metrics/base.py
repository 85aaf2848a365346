"""Metric protocol.

A metric has ``name``, ``higher_is_better`` and either ``per_image(recon, truth, ctx) -> (N,)``
(float arrays, NaN where undefined) or ``per_set(recon, truth, ctx) -> float``.  ``recon`` and
``truth`` are float32 tensors (N, *shape) in [-1, 1]; ``ctx`` holds y, the operator, sigma_y, the
prior and, for exact priors, ``x_map`` (the exact MAP) and ``posterior_samples``.
A metric that cannot be computed here (weights not cached, prior not exact) raises
:class:`MetricUnavailable` with the reason; the score step records it as unavailable.
"""
from __future__ import annotations


class MetricUnavailable(RuntimeError):
    pass


class Metric:
    name = ""
    higher_is_better = True
    kind = "per_image"  # or "per_set"

    def per_image(self, recon, truth, ctx):
        raise NotImplementedError

    def per_set(self, recon, truth, ctx):
        raise NotImplementedError


def to_unit(x):
    """[-1, 1] -> [0, 1], clipped (metrics are computed on [0, 1] images)."""
    return ((x + 1) / 2).clamp(0, 1)
