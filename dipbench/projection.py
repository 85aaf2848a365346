"""Projection onto the measurement subspace: x <- x - A^+(A x - y), a post-step any solver can have.

The VML-MAP paper projects "the final reconstructed images of all methods onto the measurement
subspace" in its latent-diffusion table; the solver entry key ``project: true`` applies the same
step to any solver's output (dipbench/pipeline.py).  After it, A x = A A^+ y: the observed part of
the image is the data's (for inpainting, the kept pixels are copied from y; for a noisy y the
projection puts that noise back into the range of A, the step is not a denoiser).

* Operators with an SVD: A^+ from the SVD (``op.pinv``; singular values below the operator's own
  threshold are already out of its SVD, so the step acts on the kept spectrum only).
* Linear operators with an adjoint but no SVD: A^+ r = A^T u with (A A^T) u = r solved by conjugate
  gradients (dipbench/cg.py), the minimum-norm correction.
* Forward-only (nonlinear) operators have no pseudo-inverse: config validation refuses
  ``project`` for them (restrict the entry with ``tasks:``), and :func:`project` raises.
"""
from __future__ import annotations

import torch

CG_ITERS, CG_TOL = 500, 1e-6


class NoPseudoInverse(TypeError):
    pass


def pinv_apply(op, r: torch.Tensor) -> torch.Tensor:
    """A^+ r for a batch of measurement-space residuals r."""
    if "svd" in op.provides:
        return op.pinv(r)
    if "adjoint" in op.provides and getattr(op, "linear", False):
        from .cg import batched_cg

        u = batched_cg(lambda v: op.forward(op.adjoint(v)), r, CG_ITERS, CG_TOL)
        return op.adjoint(u)
    raise NoPseudoInverse(
        f"operator '{getattr(op, 'registry_name', type(op).__name__)}' has no pseudo-inverse "
        f"(it provides {', '.join(sorted(op.provides))}): projection onto the measurement subspace "
        f"needs an SVD or a linear operator with an adjoint")


def project(x: torch.Tensor, y: torch.Tensor, op) -> torch.Tensor:
    """x - A^+(A x - y), batched; gradients are not tracked."""
    with torch.no_grad():
        return x - pinv_apply(op, op.forward(x) - y)
