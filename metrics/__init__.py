"""Metrics; ``build(name)``, ``names()``."""
from dipbench.autoload import import_submodules

from .registry import METRICS
from .base import Metric, MetricUnavailable

import_submodules(__name__, __path__)


def build(name: str, **params) -> Metric:
    return METRICS.build(name, **params)


def names() -> list[str]:
    return METRICS.names()
