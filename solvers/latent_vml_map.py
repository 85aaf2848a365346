"""LatentVML-MAP: VML-MAP on a latent diffusion prior, the data term read through the decoder.

The prior's denoiser acts on latents z (``den.shape`` is the latent shape) and ``den.decode``
maps a latent to an image.  With D = D(z, s), J = dD/dz and the decoded estimate x0 = decode(D),

    VML_S(z) = ||y - H decode(D)||^2 / (2 sy^2) - ||z - D||^2 / (2 s^2) - log p_s(z),
    grad     = J^T g,   g = W^T H^T (H decode(D) - y) / sy^2 + (z - D) / s^2,

W = d decode / dz at D (a VJP through the decoder; the decoder's own weights are not the prior's,
so this VJP is not counted as a denoiser VJP).  Loop, step size and renoising are VML-MAP's with
||H W||^2 in place of ||H||^2 (power iteration on the Jacobian of z -> H decode(z) at z = 0,
the centre of a standardised latent space; exact for a linear decoder; no denoiser calls).

Final projection (the VML-MAP paper's LDM variant: "projection onto the measurement subspace"),
``project=True`` by default: for a linear operator with an SVD the range-space component of the
decoded x0 is replaced by the pseudo-inverse solution,

    x <- x + H^+ (y - H x)        (= (I - H^+ H) x + H^+ y),

so that H x = y exactly and the null-space part comes from the decoder.  This is the
noiseless-consistency projection: with sy > 0 it moves the range part from the MAP's shrunk
value to the noisy data, so compare against the exact MAP with ``project=False``.  Operators
without an SVD are returned unprojected.

Cost per image: N*K denoiser VJPs and N*(K+1) NFEs, as VML-MAP.
"""
from __future__ import annotations

import torch

from dipbench.schedule import grid
from .base import Solver, data_grad, noise
from .registry import register


def decoded_norm_sq(op, den, z0, iters: int = 50) -> float:
    """||H W||^2 at z0 by power iteration (W = d decode / dz at z0; autograd JVP/VJP)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(z0.shape, generator=g).to(z0.device)
    val = 0.0
    for _ in range(iters):
        v = v / v.norm()
        with torch.enable_grad():
            zz = z0.detach().requires_grad_(True)
            xx = den.decode(zz)
            u = torch.zeros_like(xx, requires_grad=True)
            (wtu,) = torch.autograd.grad(xx, zz, grad_outputs=u, create_graph=True)
            (wv,) = torch.autograd.grad(wtu, u, grad_outputs=v)            # W v (double-VJP trick)
        hv = data_grad(op, wv, torch.zeros_like(op(wv)))                      # H^T H W v
        with torch.enable_grad():
            zz = z0.detach().requires_grad_(True)
            (v,) = torch.autograd.grad(den.decode(zz), zz, grad_outputs=hv)   # W^T H^T H W v
        val = float(v.norm())
    return val


@register("latent_vml_map")
class LatentVMLMAP(Solver):
    defaults = dict(steps=20, iters=50, lr_scale=1.0, schedule="edm", sigma_min=0.002,
                    sigma_max=80.0, rho=7.0, sigma_y_floor=1e-3, project=True)
    needs = frozenset({"forward", "adjoint"})

    def solve(self, y, op, den, sigma_y, generator):
        if not (hasattr(den, "decode") and hasattr(den, "encode")):
            raise TypeError("latent_vml_map needs a latent prior with encode/decode")
        p = self.p
        sy = max(float(sigma_y), p.sigma_y_floor)
        sigmas = grid(p.schedule, p.steps, den, p.sigma_min, p.sigma_max, p.rho).tolist()
        shape = (y.shape[0],) + tuple(den.shape)
        lip = decoded_norm_sq(op, den, torch.zeros((1,) + tuple(den.shape), device=y.device))
        x = sigmas[0] * noise(shape, generator)
        d0 = x
        for i, s in enumerate(sigmas):
            eta = p.lr_scale / (lip / sy ** 2 + 1.0 / (4 * s ** 2))
            for _ in range(p.iters):
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    d = den(x, s)
                    dd = d.detach().requires_grad_(True)
                    img = den.decode(dd)
                    (wt,) = torch.autograd.grad(img, dd, grad_outputs=data_grad(op, img.detach(), y))
                    g = wt / sy ** 2 + (x.detach() - d.detach()) / s ** 2
                    (grad,) = torch.autograd.grad(d, x, grad_outputs=g)
                x = x.detach() - eta * grad
            with torch.no_grad():
                d0 = den(x, s)
            if i + 1 < len(sigmas):
                x = d0 + sigmas[i + 1] * noise(shape, generator)
        with torch.no_grad():
            out = den.decode(d0.detach())
            if p.project and "svd" in op.provides:
                out = out + op.pinv(y - op(out)).reshape(out.shape)
        return out
