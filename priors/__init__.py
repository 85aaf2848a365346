"""Priors (denoisers); ``build(name, **params)``."""
from .registry import PRIORS
from .base import Denoiser
from dipbench.autoload import import_submodules

import_submodules(__name__, __path__)
from .gaussian import GaussianPrior
from .gmm import GMMPrior


def build(name: str, **params):
    return PRIORS.build(name, **params)


def names() -> list[str]:
    return PRIORS.names()
