"""Operator protocol.

Every operator maps a batch x of shape (B, *x_shape) to y of shape (B, *y_shape).
Capabilities are declared in ``provides`` ("forward", "adjoint", "svd"); asking for a missing one
raises :class:`MissingCapability` naming the operator and what it lacks.

SVD operators follow one spectral convention:
``Vt(x)`` -> (B, n) coefficients, ``singulars()`` -> (k,) positive values aligned with the first k
coefficients, ``Ut(y)`` -> (B, m) coefficients whose first k are aligned the same way, ``U(z)`` maps
(B, k) or (B, m) back to y-space and ``V(c)`` (B, n) back to x-space.  Forward, adjoint and the
pseudo-inverse are written once here on top of those maps:

    A x  = U(s * Vt(x)[:, :k]),   A^T y = V(pad(s * Ut(y)[:, :k])),   A^+ y = V(pad(Ut(y)[:, :k] / s)).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch


class MissingCapability(TypeError):
    pass


class OperatorShapeError(ValueError):
    pass


class Operator:
    provides: frozenset = frozenset({"forward"})
    linear: bool = False

    def __init__(self, x_shape: Sequence[int], y_shape: Sequence[int]):
        self.x_shape = tuple(int(s) for s in x_shape)
        self.y_shape = tuple(int(s) for s in y_shape)

    # -- shape checks -------------------------------------------------------------------
    def _check(self, t: torch.Tensor, shape: tuple, what: str) -> None:
        if tuple(t.shape[1:]) != shape:
            raise OperatorShapeError(
                f"{type(self).__name__}: {what} must have shape (B, {', '.join(map(str, shape))}),"
                f" got {tuple(t.shape)}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.x_shape, "input x")
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _missing(self, what: str):
        raise MissingCapability(
            f"operator '{getattr(self, 'registry_name', type(self).__name__)}' does not provide "
            f"'{what}' (it provides: {', '.join(sorted(self.provides))})")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._missing("adjoint")

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        self._missing("svd")

    def require(self, needs) -> None:
        lacking = set(needs) - set(self.provides)
        if lacking:
            self._missing(", ".join(sorted(lacking)))

    def to(self, device) -> "Operator":
        """Move tensor attributes to a device (in place); returns self."""
        for k, v in list(vars(self).items()):
            if isinstance(v, torch.Tensor):
                setattr(self, k, v.to(device))
        return self

    def to_image(self, y: torch.Tensor) -> torch.Tensor | None:
        """A picture of the measurement in x-space (for figures); None when there is none."""
        if tuple(y.shape[1:]) == self.x_shape:
            return y
        if "adjoint" in self.provides:
            return self.adjoint(y)
        return None

    def norm_sq(self) -> float:
        """||A||^2 (largest squared singular value); power iteration for linear maps without SVD."""
        if not self.linear:
            self._missing("adjoint")
        g = torch.Generator().manual_seed(0)
        x = torch.randn((1,) + self.x_shape, generator=g).to(self._device())
        val = 0.0
        for _ in range(50):
            x = x / x.norm()
            x = self.adjoint(self.forward(x))
            val = float(x.norm())
        return val

    def _device(self):
        for v in vars(self).values():
            if isinstance(v, torch.Tensor):
                return v.device
        return torch.device("cpu")


class LinearOperator(Operator):
    """Linear map with an explicit adjoint (subclasses implement forward and adjoint)."""
    provides = frozenset({"forward", "adjoint"})
    linear = True

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SVDOperator(LinearOperator):
    """Linear map given by its singular value decomposition, applied as functions."""
    provides = frozenset({"forward", "adjoint", "svd"})

    @property
    def n(self) -> int:
        return math.prod(self.x_shape)

    @property
    def m(self) -> int:
        return math.prod(self.y_shape)

    # subclasses: Vt, V, Ut, U, singulars ------------------------------------------------
    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def V(self, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def U(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def singulars(self) -> torch.Tensor:
        raise NotImplementedError

    # written once ------------------------------------------------------------------------
    def pad_x(self, c: torch.Tensor) -> torch.Tensor:
        """Pad (B, k) spectral coefficients with zeros to (B, n)."""
        return torch.nn.functional.pad(c, (0, self.n - c.shape[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.singulars()
        return self.U(s * self.Vt(x)[:, : s.numel()])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        s = self.singulars()
        return self.V(self.pad_x(s * self.Ut(y)[:, : s.numel()]))

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        s = self.singulars()
        return self.V(self.pad_x(self.Ut(y)[:, : s.numel()] / s))

    def norm_sq(self) -> float:
        s = self.singulars()
        return float(s.max() ** 2) if s.numel() else 0.0


def flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)
