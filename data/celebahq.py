"""CelebA-HQ at 256x256, a 100-image test subset.

Read from ``root`` (param) or $DIPBENCH_CELEBAHQ_ROOT.  File names accepted for id ``29000``:
``29000.png|jpg`` (zero-padded 5 digits, the PGGAN/"celeba_hq_256" layout), ``29000.jpg`` as
plain integers (CelebAMask-HQ's ``CelebA-HQ-img/0.jpg`` .. ``29999.jpg``) and ``imgHQ29000.png``.  Images go through data.ffhq.center_crop_arr (1024 -> 256 by box halving).

Subset (data/manifests/celebahq256_test100.txt): ids 29000 .. 29099, from the end of the 30,000
image index, because the papers' exact 100-image lists were not available offline when this was
written.  Pass ``ids_file`` (one id per line) to use a paper's list instead; record which one in
the config.  Check that the subset is disjoint from the training split of the prior you use.
"""
from __future__ import annotations

from pathlib import Path

from .ffhq import FolderDataset, read_ids_file
from .registry import register

MANIFEST = Path(__file__).resolve().parent / "manifests" / "celebahq256_test100.txt"


class CelebAHQ256(FolderDataset):
    name = "celebahq256"
    env = "DIPBENCH_CELEBAHQ_ROOT"
    fix = ("Expected CelebA-HQ images named like 29000.png / 29000.jpg (or CelebAMask-HQ's "
           "29000.jpg) for the ids in data/manifests/celebahq256_test100.txt.")

    def __init__(self, root=None, size: int = 256, ids_file=None, n: int | None = None):
        ids = read_ids_file(ids_file or MANIFEST)
        super().__init__(root, size, ids[:n] if n else ids)

    def candidates(self, image_id):
        k = int(image_id)
        names = [f"{k:05d}.png", f"{k:05d}.jpg", f"{k}.jpg", f"{k}.png", f"imgHQ{k:05d}.png"]
        return [self.root / n for n in dict.fromkeys(names)]


@register("celebahq256")
def celebahq256(root: str | None = None, size: int = 256, ids_file: str | None = None,
                n: int | None = None):
    return CelebAHQ256(root, size, ids_file, n)
