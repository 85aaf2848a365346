"""Embedded image data: only images that ship inside the scikit-image wheel (no network).

Split by *source image* (never crops of one image on both sides):
  test  = chelsea, coffee, rocket                        (natural photographs)
  train = astronaut, hubble_deep_field, immunohistochemistry, retina, stereo_motorcycle (both
          views), and the grayscale photographs/textures camera, moon, brick, grass, gravel
          (replicated to three channels).
Test images are 32x32 RGB, fixed and deterministic: for each test source the centre-square
thumbnail and 7 crops at fixed relative positions (3 of side 128 px, 4 of side 64 px), each
reduced by block averaging (skimage.transform.downscale_local_mean) and rounded to 8 bits, so ids
and pixels are identical on every machine.  Ids are ``{source}_{kind}``; thumbnails come first, so
any prefix of the list mixes the three sources.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Dataset, uint8_to_unit
from .registry import register

TEST_SOURCES = ("chelsea", "coffee", "rocket")
TRAIN_SOURCES = ("astronaut", "hubble_deep_field", "immunohistochemistry", "retina",
                 "stereo_motorcycle", "camera", "moon", "brick", "grass", "gravel")
SIZE = 32
# (name, side in source pixels or None for the centre square, relative centre (row, col))
CROPS = (("thumb", None, (0.5, 0.5)),
         ("c128a", 128, (0.35, 0.35)), ("c128b", 128, (0.6, 0.65)), ("c128c", 128, (0.5, 0.5)),
         ("c64a", 64, (0.3, 0.7)), ("c64b", 64, (0.7, 0.3)), ("c64c", 64, (0.45, 0.55)),
         ("c64d", 64, (0.65, 0.6)))


def source_images(name: str) -> list[np.ndarray]:
    """HWC uint8 RGB arrays of one skimage source (stereo_motorcycle gives both views)."""
    import skimage.data

    img = getattr(skimage.data, name)()
    imgs = list(img[:2]) if isinstance(img, tuple) else [img]
    out = []
    for im in imgs:
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(im[..., :3]))
    return out


def reduce_to(patch: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Square uint8 patch whose side is a multiple of `size` -> size x size uint8 by block mean."""
    from skimage.transform import downscale_local_mean

    f = patch.shape[0] // size
    small = downscale_local_mean(patch[: f * size, : f * size].astype(np.float64), (f, f, 1))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _crop(img: np.ndarray, side, centre) -> np.ndarray:
    h, w = img.shape[:2]
    if side is None:
        side = (min(h, w) // SIZE) * SIZE
    top = int(round(centre[0] * h - side / 2))
    left = int(round(centre[1] * w - side / 2))
    top, left = min(max(top, 0), h - side), min(max(left, 0), w - side)
    return img[top: top + side, left: left + side]


class SkImage32(Dataset):
    shape = (3, SIZE, SIZE)

    def __init__(self):
        self._ids = [f"{s}_{kind}" for kind, _, _ in CROPS for s in TEST_SOURCES]
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def ids(self):
        return list(self._ids)

    def _make(self, image_id: str) -> torch.Tensor:
        source, kind = image_id.rsplit("_", 1)
        spec = {k: (side, c) for k, side, c in CROPS}
        if source not in TEST_SOURCES or kind not in spec:
            raise KeyError(f"unknown skimage32 image id '{image_id}'")
        side, centre = spec[kind]
        return uint8_to_unit(reduce_to(_crop(source_images(source)[0], side, centre)))

    def load(self, ids=None) -> torch.Tensor:
        ids = self.ids if ids is None else list(ids)
        for i in ids:
            if i not in self._cache:
                self._cache[i] = self._make(i)
        return torch.stack([self._cache[i] for i in ids])


def train_crops(n: int, seed: int = 0, scales=(1, 2, 4, 8)) -> np.ndarray:
    """n random 32x32 RGB uint8 crops of the train sources (random scale, position, flip).

    Deterministic for a given (n, seed); returns (n, 32, 32, 3) uint8.
    """
    rng = np.random.default_rng(seed)
    images = [im for s in TRAIN_SOURCES for im in source_images(s)]
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(n):
        im = images[rng.integers(len(images))]
        h, w = im.shape[:2]
        fits = [s for s in scales if SIZE * s <= min(h, w)]
        f = fits[rng.integers(len(fits))]
        side = SIZE * f
        top, left = rng.integers(h - side + 1), rng.integers(w - side + 1)
        patch = reduce_to(im[top: top + side, left: left + side])
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i] = patch
    return out


@register("skimage32")
def skimage32():
    return SkImage32()
