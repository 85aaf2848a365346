"""Metrics; ``build(name)``, ``names()``."""
import importlib
import pkgutil

from .registry import METRICS
from .base import Metric, MetricUnavailable

# every module registers its metrics on import (adding a metric is one file); ``prefetch`` is a
# command-line tool (``python -m metrics.prefetch``) and is not imported here
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if not _info.name.startswith("_") and _info.name != "prefetch":
        importlib.import_module(f"{__name__}.{_info.name}")


def build(name: str, **params) -> Metric:
    return METRICS.build(name, **params)


def names() -> list[str]:
    return METRICS.names()
