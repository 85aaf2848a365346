"""Inpainting: keep the pixels a boolean mask marks, drop the rest.

y is the vector of kept entries (B, k), in C-major order of the image.  All singular values are 1;
V's coefficient order puts kept entries first, then missing ones.  Masks are the same on every
channel.  Each mask shape is one function registered below:

* ``inpaint_half``     right (or left) half missing;
* ``inpaint_box``      a centred square missing (``fraction`` of the width, or ``size`` pixels);
* ``inpaint_expand``   everything outside a centred square missing (only the centre is kept);
* ``inpaint_random``   a ``fraction`` of the pixels missing, drawn from an integer ``seed`` with a
                       private ``torch.Generator`` (exactly round(fraction * H * W) pixels missing);
* ``inpaint_srmask``   only every ``factor``-th pixel on both axes kept (the sr2x mask for factor 2);
* ``inpaint_alllines`` every other row missing (even rows kept).
"""
from __future__ import annotations

import torch

from .base import SVDOperator, flat
from .registry import register


class MaskOperator(SVDOperator):
    def __init__(self, shape, pixel_mask: torch.Tensor):
        """pixel_mask: (H, W) bool, True where the pixel is observed."""
        shape = tuple(shape)
        pixel_mask = torch.as_tensor(pixel_mask, dtype=torch.bool)
        if pixel_mask.shape != tuple(shape[-2:]):
            raise ValueError(f"mask shape {tuple(pixel_mask.shape)} does not match image {shape}")
        full = pixel_mask.expand(shape).reshape(-1)
        self.kept = torch.nonzero(full).squeeze(1)
        self.missing = torch.nonzero(~full).squeeze(1)
        self.perm = torch.cat([self.kept, self.missing])
        self.inv_perm = torch.argsort(self.perm)
        self.mask = pixel_mask.expand(shape).clone()
        super().__init__(shape, (int(self.kept.numel()),))

    def singulars(self):
        return torch.ones(self.kept.numel(), device=self.kept.device)

    def Vt(self, x):
        return flat(x)[:, self.perm]

    def V(self, c):
        c = self.pad_x(c) if c.shape[1] < self.n else c
        return c[:, self.inv_perm].reshape((-1,) + self.x_shape)

    def Ut(self, y):
        return y

    def U(self, z):
        return z

    # direct forms (same maps, no permutation of the missing part)
    def forward(self, x):
        return flat(x)[:, self.kept]

    def adjoint(self, y):
        out = torch.zeros((y.shape[0], self.n), dtype=y.dtype, device=y.device)
        out[:, self.kept] = y
        return out.reshape((-1,) + self.x_shape)

    pinv = adjoint


def _hw(shape):
    if len(shape) < 2:
        raise ValueError(f"inpainting needs an image shape (C, H, W), got {tuple(shape)}")
    return shape[-2], shape[-1]


@register("inpaint_half")
def inpaint_half(shape, side: str = "right"):
    """Right (or left) half of the image missing."""
    h, w = _hw(shape)
    m = torch.ones(h, w, dtype=torch.bool)
    if side == "right":
        m[:, w // 2:] = False
    elif side == "left":
        m[:, : w // 2] = False
    else:
        raise ValueError(f"inpaint_half: side must be 'right' or 'left', got {side!r}")
    return MaskOperator(shape, m)


@register("inpaint_box")
def inpaint_box(shape, fraction: float = 0.5, size: int | None = None):
    """A centred square missing; width = fraction of the image width, or `size` pixels."""
    h, w = _hw(shape)
    if size is None:
        if not 0 < fraction < 1:
            raise ValueError(f"inpaint_box: fraction must be in (0, 1), got {fraction}")
        size = int(round(fraction * min(h, w)))
    top, left = (h - size) // 2, (w - size) // 2
    m = torch.ones(h, w, dtype=torch.bool)
    m[top: top + size, left: left + size] = False
    return MaskOperator(shape, m)


def _centred_size(name, h, w, fraction, size):
    if size is None:
        if not 0 < fraction < 1:
            raise ValueError(f"{name}: fraction must be in (0, 1), got {fraction}")
        size = round(fraction * min(h, w))
    size = int(size)
    if not 0 < size <= min(h, w):
        raise ValueError(f"{name}: size must be in [1, {min(h, w)}], got {size}")
    return size


@register("inpaint_expand")
def inpaint_expand(shape, fraction: float = 0.5, size: int | None = None):
    """Only a centred square is observed (width = fraction of the image width, or `size` pixels);
    everything outside it is missing (the 'expand' / outpainting mask)."""
    h, w = _hw(shape)
    size = _centred_size("inpaint_expand", h, w, fraction, size)
    top, left = (h - size) // 2, (w - size) // 2
    m = torch.zeros(h, w, dtype=torch.bool)
    m[top: top + size, left: left + size] = True
    return MaskOperator(shape, m)


def random_pixel_mask(h: int, w: int, fraction: float, seed: int) -> torch.Tensor:
    """(H, W) bool mask with exactly round(fraction * H * W) pixels missing (False), chosen by a
    random permutation from ``torch.Generator().manual_seed(seed)`` (never the global RNG)."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"inpaint_random: fraction must be in [0, 1], got {fraction}")
    if int(seed) != seed:
        raise ValueError(f"inpaint_random: seed must be an integer, got {seed!r}")
    g = torch.Generator().manual_seed(int(seed))
    n_missing = round(fraction * h * w)
    order = torch.randperm(h * w, generator=g)
    m = torch.ones(h * w, dtype=torch.bool)
    m[order[:n_missing]] = False
    return m.reshape(h, w)


@register("inpaint_random")
def inpaint_random(shape, fraction: float = 0.5, seed: int = 0):
    """A `fraction` of the pixels missing (same on every channel), mask drawn from `seed`.
    DDRM's 'inp' uses 50 %; DAPS ~70 %."""
    h, w = _hw(shape)
    return MaskOperator(shape, random_pixel_mask(h, w, fraction, seed))


@register("inpaint_srmask")
def inpaint_srmask(shape, factor: int = 2):
    """Keep pixel (i, j) iff i % factor == 0 and j % factor == 0 (1/factor^2 of the pixels):
    the 'sr2x' mask for factor 2."""
    h, w = _hw(shape)
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"inpaint_srmask: factor must be >= 1, got {factor}")
    m = torch.zeros(h, w, dtype=torch.bool)
    m[::factor, ::factor] = True
    return MaskOperator(shape, m)


@register("inpaint_alllines")
def inpaint_alllines(shape):
    """Every other row missing: rows 0, 2, 4, ... kept, rows 1, 3, 5, ... missing."""
    h, w = _hw(shape)
    m = torch.zeros(h, w, dtype=torch.bool)
    m[::2, :] = True
    return MaskOperator(shape, m)
