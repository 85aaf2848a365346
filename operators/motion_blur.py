"""Motion deblurring: a seeded random camera-shake kernel, reflect padding, explicit adjoint.

Forward (as DPS's task, which uses ``nn.Conv2d`` after ``ReflectionPad2d``): per channel,
y = correlate(reflect_pad(x, r), k) with r = size // 2, i.e.
y[i, j] = sum_{a, b} k[a, b] * x_pad[i + a, j + b], and y has the shape of x.
Adjoint: the transposed convolution of y with k (shape of the padded image), then every padded
position is added back onto the pixel it was reflected from (the adjoint of the gather that the
reflect padding is).  Both are linear, written explicitly and differentiable.

Kernel (written here, not DPS's ``motionblur`` package; generated from an integer ``seed`` with a
private ``torch.Generator``, so it is the same on every build):
  * a trajectory of n + 1 points, n = 4 * size, taken at equal time steps;
  * heading: theta_0 ~ U[0, 2 pi), then a Gaussian random walk with per-step std
    2 pi * intensity / sqrt(n), so the total heading wander has std 2 pi * intensity
    (intensity 0: a straight line);
  * speed: exp(1.5 * intensity * W_t) with W a Gaussian random walk normalised to unit variance at
    the end (the camera dwells, giving brighter spots, where it moves slowly);
  * total path length L = (size - 1) * (0.5 + 0.5 * intensity); the path is centred on its centroid
    and shrunk about it if needed to fit inside the kernel;
  * every point is splatted bilinearly onto the size x size grid; the kernel is normalised to
    sum 1, so a constant image is left unchanged (reflect padding keeps constants).
Defaults: intensity 0.5 (the DPS convention's value), size 61 at 256 px and
2 * floor(30 * H / 256 + 1/2) + 1 for other heights H (17 at 64, 9 at 32).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import LinearOperator
from .registry import register


def motion_kernel(size: int, intensity: float = 0.5, seed: int = 0) -> torch.Tensor:
    """(size, size) float64 non-negative kernel summing to 1, a function of (size, intensity, seed)."""
    if size < 3 or size % 2 == 0:
        raise ValueError(f"deblur_motion: size must be an odd integer >= 3, got {size}")
    if not 0 <= intensity <= 1:
        raise ValueError(f"deblur_motion: intensity must be in [0, 1], got {intensity}")
    if int(seed) != seed:
        raise ValueError(f"deblur_motion: seed must be an integer, got {seed!r}")
    g = torch.Generator().manual_seed(int(seed))
    dt = torch.float64
    n = 4 * size
    theta0 = 2 * math.pi * torch.rand((), generator=g, dtype=dt)
    dtheta = (2 * math.pi * intensity / math.sqrt(n)) * torch.randn(n, generator=g, dtype=dt)
    theta = theta0 + torch.cumsum(dtheta, 0)
    walk = torch.cumsum(torch.randn(n, generator=g, dtype=dt), 0) / math.sqrt(n)
    speed = torch.exp(1.5 * intensity * walk)
    length = (size - 1) * (0.5 + 0.5 * intensity)
    step = length * speed / speed.sum()
    d = torch.stack([step * torch.sin(theta), step * torch.cos(theta)], dim=1)  # (row, col)
    pts = torch.cat([torch.zeros(1, 2, dtype=dt), torch.cumsum(d, 0)], dim=0)
    pts = pts - pts.mean(0)
    r = size // 2
    reach = pts.abs().max()
    if reach > r - 1e-6:
        pts = pts * ((r - 1e-6) / reach)
    pts = pts + r                                  # kernel coordinates, centre at (r, r)
    k = torch.zeros(size * size, dtype=dt)
    base = torch.floor(pts).long().clamp(0, size - 2)
    frac = pts - base
    for di in (0, 1):
        for dj in (0, 1):
            wgt = (frac[:, 0] if di else 1 - frac[:, 0]) * (frac[:, 1] if dj else 1 - frac[:, 1])
            idx = (base[:, 0] + di) * size + (base[:, 1] + dj)
            k.index_add_(0, idx, wgt)
    k = k.reshape(size, size)
    return k / k.sum()


def reflect_index(n: int, r: int) -> torch.Tensor:
    """Source index of every position of a length-n axis reflect-padded by r (torch 'reflect')."""
    j = torch.arange(-r, n + r)
    j = torch.where(j < 0, -j, j)
    return torch.where(j >= n, 2 * (n - 1) - j, j)


class MotionBlur(LinearOperator):
    def __init__(self, shape, kernel: torch.Tensor):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"deblur_motion needs an image shape (C, H, W), got {shape}")
        c, h, w = shape
        kernel = torch.as_tensor(kernel)
        ks = kernel.shape[-1]
        if kernel.ndim != 2 or kernel.shape[0] != ks or ks % 2 == 0:
            raise ValueError(f"deblur_motion: kernel must be square with odd size, got {tuple(kernel.shape)}")
        self.r = ks // 2
        if self.r >= min(h, w):
            raise ValueError(f"deblur_motion: kernel size {ks} too large for reflect padding of {h}x{w}")
        self.kernel = kernel.float()
        self.weight = self.kernel.expand(c, 1, ks, ks).contiguous()
        self.idx_h = reflect_index(h, self.r)
        self.idx_w = reflect_index(w, self.r)
        super().__init__(shape, shape)

    def forward(self, x):
        r = self.r
        xp = F.pad(x, (r, r, r, r), mode="reflect")
        return F.conv2d(xp, self.weight.to(x.dtype), groups=self.x_shape[0])

    def adjoint(self, y):
        t = F.conv_transpose2d(y, self.weight.to(y.dtype), groups=self.x_shape[0])
        c, h, w = self.x_shape
        t = torch.zeros(y.shape[0], c, h, t.shape[-1], dtype=y.dtype, device=y.device).index_add(
            2, self.idx_h, t)
        return torch.zeros(y.shape[0], c, h, w, dtype=y.dtype, device=y.device).index_add(
            3, self.idx_w, t)


@register("deblur_motion")
def deblur_motion(shape, size: int | None = None, intensity: float = 0.5, seed: int = 0):
    """Seeded random motion blur; size defaults to 61 at 256 px, scaled with the height."""
    shape = tuple(shape)
    if len(shape) != 3:
        raise ValueError(f"deblur_motion needs an image shape (C, H, W), got {shape}")
    size = 2 * int(30 * shape[1] / 256 + 0.5) + 1 if size is None else int(size)
    op = MotionBlur(shape, motion_kernel(size, intensity, seed))
    op.seed, op.intensity = int(seed), float(intensity)
    return op
