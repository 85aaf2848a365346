"""Gaussian deblurring as a separable SVD operator (zero boundary).

The 2-D Gaussian kernel exp(-(a^2 + b^2) / (2 std^2)) is the outer product of two 1-D Gaussians, so
the blur is X -> A X A^T per channel with A the n x n zero-boundary convolution matrix of the 1-D
kernel, and its SVD comes from the two 1-D SVDs (``operators.separable.Separable``).

Kernel, following DPS's task (61 x 61 taps, std 3.0 at 256 px, built there by
``scipy.ndimage.gaussian_filter`` of a centred delta, i.e. a sampled Gaussian truncated at radius
int(4 std + 0.5) = 12 and normalised to sum 1): the 1-D taps are g[t] = exp(-t^2 / (2 std^2)) for
|t| <= min(size // 2, int(truncate * std + 0.5)), zero elsewhere, normalised to sum 1.  For
other image sizes std and size scale with the height H: std = 3.0 * H / 256 and
size = 2 * floor(30 * H / 256 + 1/2) + 1 (61 at 256, 17 at 64, 9 at 32); both are parameters.

Differences from DPS that change numbers: zero boundary here (DPS pads by reflection), because the
SVD needs a fixed matrix; and singular values at or below ``threshold`` are dropped (default 0.03,
DDRM's ZERO), so the operator is the truncated one and its pseudo-inverse is finite.
``threshold=0`` gives the exact zero-padded convolution.
"""
from __future__ import annotations

import torch

from .registry import register
from .separable import Separable, conv_matrix


def default_std(h: int) -> float:
    return 3.0 * h / 256


def default_size(h: int) -> int:
    return 2 * int(30 * h / 256 + 0.5) + 1


def gaussian_kernel_1d(size: int, std: float, truncate: float = 4.0) -> torch.Tensor:
    """(size,) float64 sampled Gaussian, zero beyond radius int(truncate * std + 0.5), sum 1."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"deblur_gauss: size must be a positive odd integer, got {size}")
    if not std > 0:
        raise ValueError(f"deblur_gauss: std must be > 0, got {std}")
    r = size // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-t ** 2 / (2 * std ** 2))
    if truncate is not None:
        g = torch.where(t.abs() <= int(truncate * std + 0.5), g, torch.zeros_like(g))
    return g / g.sum()


def gaussian_kernel_2d(size: int, std: float, truncate: float = 4.0) -> torch.Tensor:
    g = gaussian_kernel_1d(size, std, truncate)
    return torch.outer(g, g)


@register("deblur_gauss")
def deblur_gauss(shape, std: float | None = None, size: int | None = None, truncate: float = 4.0,
                 threshold: float = 0.03, threshold_mode: str = "2d"):
    """Separable Gaussian blur (zero boundary) with a thresholded SVD; std/size default to DPS's
    61/3.0 scaled to the image height."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"deblur_gauss needs an image shape (C, H, W), got {shape}")
    _, h, w = shape
    std = default_std(h) if std is None else float(std)
    size = default_size(h) if size is None else int(size)
    k = gaussian_kernel_1d(size, std, truncate)
    op = Separable(shape, conv_matrix(h, k), conv_matrix(w, k), threshold, threshold_mode)
    op.kernel = k.float()
    op.std, op.size = std, size
    return op

