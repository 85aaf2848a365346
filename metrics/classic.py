"""PSNR and SSIM on [0, 1] images (scikit-image's implementations; no weights needed)."""
from __future__ import annotations

import numpy as np

from .base import Metric, to_unit
from .registry import register


def _hwc(t):
    a = t.detach().cpu().double().numpy()
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


@register("psnr")
class PSNR(Metric):
    name, higher_is_better = "psnr", True

    def per_image(self, recon, truth, ctx):
        out = []
        for r, t in zip(to_unit(recon), to_unit(truth)):
            mse = float(((r.double() - t.double()) ** 2).mean())
            out.append(10 * np.log10(1.0 / mse) if mse > 0 else np.inf)
        return np.array(out)


@register("ssim")
class SSIM(Metric):
    name, higher_is_better = "ssim", True

    def per_image(self, recon, truth, ctx):
        from skimage.metrics import structural_similarity

        out = []
        for r, t in zip(to_unit(recon), to_unit(truth)):
            if r.ndim != 3:
                raise ValueError("ssim needs image-shaped data (C, H, W)")
            out.append(structural_similarity(_hwc(t), _hwc(r), data_range=1.0,
                                             channel_axis=2 if r.shape[0] > 1 else None,
                                             win_size=min(7, r.shape[-1] - (1 - r.shape[-1] % 2))))
        return np.array(out)
