"""PSNR and SSIM on [0, 1] images.

Images (N, C, H, W) with C in {1, 3} go through pyiqa's weight-free implementations
(``psnr``: RGB, no Y-channel conversion; ``ssimc``: SSIM on every channel with pyiqa's 11x11
Gaussian window, no downsampling).  pyiqa takes several seconds to import, so it is imported on
first use only; where it cannot be imported the scikit-image versions are used (and said so in
the log).  Other shapes (vectors of the analytic-prior benchmarks) get PSNR from its definition
(10 log10(1 / MSE) on [0, 1] values); SSIM is undefined there.  ``ssim_skimage`` keeps the
scikit-image SSIM (7x7 uniform window) for comparison with papers that used it.
"""
from __future__ import annotations

import functools
import sys

import numpy as np
import torch

from .base import Metric, to_unit
from .registry import register


@functools.lru_cache(maxsize=None)
def _pyiqa(name: str):
    """pyiqa metric object (cached), or None where pyiqa is not importable."""
    try:
        import pyiqa
    except Exception as e:  # pragma: no cover - depends on the environment
        print(f"[metrics] pyiqa unavailable ({type(e).__name__}: {e}); using scikit-image", file=sys.stderr)
        return None
    return pyiqa.create_metric(name, device="cpu", as_loss=False)


def _is_image(t) -> bool:
    return t.ndim == 4 and t.shape[1] in (1, 3)


def _hwc(t):
    a = t.detach().cpu().double().numpy()
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def _psnr_def(r, t):
    mse = ((r.double() - t.double()) ** 2).reshape(len(r), -1).mean(1).numpy()
    with np.errstate(divide="ignore"):
        return 10 * np.log10(1.0 / mse)


def _skimage_ssim(r_all, t_all):
    from skimage.metrics import structural_similarity

    out = []
    for r, t in zip(r_all, t_all):
        out.append(structural_similarity(_hwc(t), _hwc(r), data_range=1.0,
                                         channel_axis=2 if r.shape[0] > 1 else None,
                                         win_size=min(7, r.shape[-1] - (1 - r.shape[-1] % 2))))
    return np.array(out)


@register("psnr")
class PSNR(Metric):
    """PSNR in dB on [0, 1] images (pyiqa ``psnr``, RGB); definition for non-image data."""
    name, higher_is_better = "psnr", True

    def per_image(self, recon, truth, ctx):
        r, t = to_unit(recon.float()), to_unit(truth.float())
        m = _pyiqa("psnr") if _is_image(r) else None
        if m is None:
            return _psnr_def(r, t)
        with torch.no_grad():
            return m(r, t).double().cpu().numpy().reshape(-1)


@register("ssim")
class SSIM(Metric):
    """SSIM on [0, 1] images (pyiqa ``ssimc``: all channels, Gaussian 11x11 window)."""
    name, higher_is_better = "ssim", True

    def per_image(self, recon, truth, ctx):
        if recon.ndim != 4:
            raise ValueError("ssim needs image-shaped data (N, C, H, W)")
        r, t = to_unit(recon.float()), to_unit(truth.float())
        m = _pyiqa("ssimc") if _is_image(r) and min(r.shape[-2:]) >= 11 else None
        if m is None:
            return _skimage_ssim(r, t)
        with torch.no_grad():
            return m(r, t).double().cpu().numpy().reshape(-1)


@register("ssim_skimage")
class SSIMSkimage(Metric):
    """scikit-image's SSIM (7x7 uniform window, channel-averaged) on [0, 1] images."""
    name, higher_is_better = "ssim_skimage", True

    def per_image(self, recon, truth, ctx):
        if recon.ndim != 4:
            raise ValueError("ssim needs image-shaped data (N, C, H, W)")
        return _skimage_ssim(to_unit(recon), to_unit(truth))
