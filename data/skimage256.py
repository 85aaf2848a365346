"""Full-size test images without downloads: the scikit-image RGB photographs whose shorter side is
at least 256 px, through ADM's ``center_crop_arr`` (data/ffhq.py) at 256x256 -- the papers' image
size, for smoke runs of the 256x256 path (config/smoke256.yaml).  Not a benchmark set.

Ids are the skimage names: astronaut (512x512), coffee (400x600), chelsea (300x451),
rocket (427x640), in that order.
"""
from __future__ import annotations

import torch

from .base import Dataset, uint8_to_unit
from .registry import register

SOURCES = ("astronaut", "coffee", "chelsea", "rocket")


class SkImage256(Dataset):
    shape = (3, 256, 256)

    @property
    def ids(self):
        return list(SOURCES)

    def load(self, ids=None) -> torch.Tensor:
        import skimage.data
        from PIL import Image

        from .ffhq import center_crop_arr

        out = []
        for i in (self.ids if ids is None else list(ids)):
            if i not in SOURCES:
                raise KeyError(f"skimage256: unknown image id {i!r}; ids: {', '.join(SOURCES)}")
            out.append(uint8_to_unit(center_crop_arr(Image.fromarray(getattr(skimage.data, i)()), 256)))
        return torch.stack(out) if out else torch.empty(0, *self.shape)


@register("skimage256")
def skimage256():
    return SkImage256()
