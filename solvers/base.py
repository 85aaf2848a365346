"""Solver protocol: ``solve(y, operator, denoiser, sigma_y, generator) -> x_hat``.

Each solver class declares ``defaults`` (its hyperparameters, with the papers' values) and
``needs`` (operator capabilities: forward / adjoint / svd).  Unknown hyperparameters are an error
that names the parameter and the valid ones.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch


class SolverConfigError(TypeError):
    pass


class Solver:
    defaults: dict = {}
    needs: frozenset = frozenset({"forward"})
    stochastic: bool = True          # samplers and noise-injecting MAP methods

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise SolverConfigError(
                f"solver '{getattr(self, 'registry_name', type(self).__name__)}' has no parameter(s) "
                f"{', '.join(sorted(unknown))}; parameters: {', '.join(sorted(self.defaults))}")
        self.params = {**self.defaults, **params}
        self.p = SimpleNamespace(**self.params)

    def solve(self, y, operator, denoiser, sigma_y: float, generator: torch.Generator):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.params})"


def data_grad(op, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A^T (A d - y): explicit adjoint when the operator has one, else autograd through A."""
    if "adjoint" in op.provides:
        return op.adjoint(op(d) - y)
    with torch.enable_grad():
        d = d.detach().requires_grad_(True)
        loss = 0.5 * ((op(d) - y) ** 2).sum()
        return torch.autograd.grad(loss, d)[0]


def noise(shape, generator):
    return torch.randn(shape, generator=generator, device=generator.device)
