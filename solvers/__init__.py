"""Inverse-problem solvers; ``build(name, **params)``."""
from .registry import SOLVERS
from .base import Solver, SolverConfigError
from .counting import CountingDenoiser
from dipbench.autoload import import_submodules

import_submodules(__name__, __path__)


def build(name: str, **params):
    return SOLVERS.build(name, **params)


def get(name: str):
    return SOLVERS.get(name)


def names() -> list[str]:
    return SOLVERS.names()
