"""FFHQ at 256x256 (the DPS/DAPS/MGPS test set: the first 1000 images, ids 00000 .. 00999).

Read from a user-given folder: ``root`` param, else $DIPBENCH_FFHQ_ROOT.  Accepted layouts:
``<root>/00000.png`` (flat, e.g. the 256x256 thumbnails used by DPS) or the official release's
``<root>/00000/00000.png`` (folders of 1000); ``.png`` or ``.jpg``.  Images of any size go
through ``center_crop_arr`` (below); 256x256 inputs are unchanged.  Nothing is downloaded.

Also holds the shared folder-dataset helpers used by data/imagenet.py and data/celebahq.py.

Resize/crop convention (guided-diffusion / ADM's ``center_crop_arr``, followed by DPS, DDRM and
the ADM-based papers): while the shorter side is at least twice the target, halve the image with
a box filter; then resize with bicubic so the shorter side equals the target; then take the
centred target x target square.  Pixels: uint8 -> float32 in [-1, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .base import Dataset, uint8_to_unit
from .registry import register


def center_crop_arr(img, size: int) -> np.ndarray:
    """PIL image -> (size, size, 3) uint8 by box halving, bicubic resize of the short side, centre crop."""
    from PIL import Image

    img = img.convert("RGB")
    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    arr = np.asarray(img)
    top = (arr.shape[0] - size) // 2
    left = (arr.shape[1] - size) // 2
    return np.array(arr[top: top + size, left: left + size], copy=True)


class FolderDataset(Dataset):
    """Images ``ids`` found under ``root`` by ``candidates(root, id)``; resized to ``size``."""
    name = "folder"
    env = ""
    fix = ""

    def __init__(self, root=None, size: int = 256, ids=None):
        r = root if root is not None else os.environ.get(self.env)
        if not r:
            raise ValueError(f"{self.name}: no image folder given: pass the dataset param `root` "
                             f"or set ${self.env}. {self.fix}")
        self.root = Path(r).expanduser()
        self.size = int(size)
        self.shape = (3, self.size, self.size)
        self._ids = list(ids) if ids is not None else self.default_ids()

    def default_ids(self) -> list[str]:
        raise NotImplementedError

    def candidates(self, image_id: str) -> list[Path]:
        raise NotImplementedError

    @property
    def ids(self):
        return list(self._ids)

    def path(self, image_id: str) -> Path | None:
        for p in self.candidates(image_id):
            if p.is_file():
                return p
        return None

    def check(self, ids=None) -> list[Path]:
        """Paths of ``ids``; fails naming the first missing file and how many are missing."""
        ids = self.ids if ids is None else list(ids)
        paths = [self.path(i) for i in ids]
        missing = [i for i, p in zip(ids, paths) if p is None]
        if missing:
            first = self.candidates(missing[0])[0]
            raise FileNotFoundError(
                f"{self.name}: {len(missing)} of {len(ids)} images missing under {self.root}; "
                f"first missing: {first} (id {missing[0]}). {self.fix} Set the dataset param `root` "
                f"or ${self.env}.")
        return paths

    def load(self, ids=None) -> torch.Tensor:
        from PIL import Image

        ids = self.ids if ids is None else list(ids)
        unknown = [i for i in ids if i not in set(self._ids)]
        if unknown:
            raise KeyError(f"{self.name}: unknown image id {unknown[0]!r}")
        out = []
        for p in self.check(ids):
            with Image.open(p) as im:
                out.append(uint8_to_unit(center_crop_arr(im, self.size)))
        return torch.stack(out) if out else torch.empty(0, *self.shape)


def read_ids_file(path) -> list[str]:
    """One id per line; blank lines and '#' comments ignored; first column only."""
    ids = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ids.append(line.split()[0])
    return ids


class FFHQ256(FolderDataset):
    name = "ffhq256"
    env = "DIPBENCH_FFHQ_ROOT"
    fix = ("Expected FFHQ files 00000.png .. 00999.png (flat, or in the release's 00000/ folder); "
           "get FFHQ from https://github.com/NVlabs/ffhq-dataset.")

    def __init__(self, root=None, n: int = 1000, size: int = 256):
        self.n = int(n)
        super().__init__(root, size)

    def default_ids(self):
        return read_ids_file(Path(__file__).resolve().parent / "manifests" / "ffhq256_test1k.txt")[: self.n]

    def candidates(self, image_id):
        sub = f"{int(image_id) // 1000 * 1000:05d}"
        return [self.root / f"{image_id}{ext}" for ext in (".png", ".jpg")] + \
               [self.root / sub / f"{image_id}{ext}" for ext in (".png", ".jpg")]


@register("ffhq256")
def ffhq256(root: str | None = None, n: int = 1000, size: int = 256):
    return FFHQ256(root, n, size)
