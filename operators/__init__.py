"""Forward operators (degradations), one module per family; ``build(name, shape, **params)``."""
from .registry import OPERATORS
from .base import MissingCapability, Operator, OperatorShapeError, LinearOperator, SVDOperator
from dipbench.autoload import import_submodules

import_submodules(__name__, __path__)


def build(name: str, shape, **params):
    op = OPERATORS.build(name, shape, **params)
    op.registry_name = name
    return op


def get(name: str):
    return OPERATORS.get(name)


def names() -> list[str]:
    return OPERATORS.names()
