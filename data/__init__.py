"""Datasets; ``build(name, **params)``, ``names()``."""
from dipbench.autoload import import_submodules

from .registry import DATASETS
from .base import Dataset

import_submodules(__name__, __path__)


def build(name: str, **params) -> Dataset:
    return DATASETS.build(name, **params)


def names() -> list[str]:
    return DATASETS.names()
