"""ImageNet validation, 1k subset (one image per class), at 256x256 and 64x64.

Read from ``root`` (param) or $DIPBENCH_IMAGENET_ROOT: the ILSVRC2012 validation images
``ILSVRC2012_val_00000001.JPEG`` .. ``ILSVRC2012_val_00050000.JPEG``, flat, or in one folder per
synset (``<root>/n01440764/ILSVRC2012_val_00000293.JPEG``, the torchvision layout).  Images go
through data.ffhq.center_crop_arr (ADM's box-halving + bicubic + centre crop) at ``size``.

The list.  DDRM-style papers evaluate on "ImageNet 1k": one validation image per class.  Their
published list was not available offline when this was written, so the list is *generated* by a
stated rule from the official labels, and its provenance is recorded:

    for every class, the validation image with the smallest file number among those labelled
    with that class; the 1000 picks are listed in file-number order.

The set of picks does not depend on how classes are numbered, so any labels file works:
  * the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (50,000 lines, one class id per line,
    line k = image k),
  * a two-column ``<file name> <label>`` text file (e.g. Caffe's ``val.txt``; labels may be ints
    or synset ids),
  * Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the first synset is used),
  * or nothing, with the synset-folder layout (the folder is the label).
Without a list file the loader applies the rule at construction (needs the labels).  Write the
list once with ``python -m data.imagenet --root R [--labels L] --write`` (to
``data/manifests/imagenet_val_1k.txt``; commit it): with that file present no labels are needed
to pick the images.  A published list (e.g. DDRM's ``imagenet_val_1k.txt``) can be used instead
with ``ids_file``.

Class labels (``labels(ids)``, for class-conditional priors with ``class_label: true``).  The
ImageNet models (EDM's ImageNet-64, guided-diffusion, the consistency models) number the classes
0..999 in the sorted order of the synset ids (EDM dataset_tool.py: the sorted top-level folder
names of the training set; guided-diffusion/consistency_models image_datasets.py: the sorted
class names).  ``labels`` gives that index, from (first that has it) the second column of the list
file (``<id> <synset or index>``, written by ``--write`` when the labels are known), the
``labels`` file, or the synset folders.  Synset ids are numbered by their rank among all 1000;
integer labels of a two-column file are taken as that index already (Caffe's ``val.txt`` uses this
order).  The devkit's ``ILSVRC2012_validation_ground_truth.txt`` numbers classes by the devkit's
own ILSVRC2012_ID, a different order: it is refused for labels (give a synset-id source instead).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

from .ffhq import FolderDataset, read_ids_file
from .registry import register

MANIFEST = Path(__file__).resolve().parent / "manifests" / "imagenet_val_1k.txt"
_NUM = re.compile(r"ILSVRC2012_val_(\d{8})")


def val_name(k: int) -> str:
    return f"ILSVRC2012_val_{k:08d}"


def read_labels(root: Path, labels=None) -> dict[str, str]:
    """{image id (file stem): label} from a labels file, or from synset folders under root."""
    out = {}
    if labels is None:
        for p in sorted(Path(root).glob("*/ILSVRC2012_val_*.*")):
            out[p.stem] = p.parent.name
        if not out:
            raise FileNotFoundError(f"imagenet: no labels file given and no synset folders with "
                                    f"ILSVRC2012_val_* images under {root}")
        return out
    labels = Path(labels)
    text = labels.read_text().splitlines()
    if labels.suffix == ".csv":
        for row in csv.DictReader(text):
            out[row["ImageId"]] = row["PredictionString"].split()[0]
        return out
    rows = [t.split() for t in text if t.strip()]
    if all(len(r) == 1 for r in rows):               # devkit ground truth: line k = image k
        return {val_name(k + 1): r[0] for k, r in enumerate(rows)}
    for r in rows:
        out[Path(r[0]).stem] = r[1]
    return out


_WNID = re.compile(r"^n\d{8}$")


def is_devkit_ground_truth(labels) -> bool:
    """A one-column labels file (the devkit's ground truth: devkit ILSVRC2012_IDs)."""
    if labels is None or Path(labels).suffix == ".csv":
        return False
    rows = [t.split() for t in Path(labels).read_text().splitlines() if t.strip()]
    return bool(rows) and all(len(r) == 1 for r in rows)


def read_id_labels(path) -> dict[str, str]:
    """{id: label} from the second column of a list file (``<id> <label>``); {} if it has none."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def class_indices(labels: dict[str, str], ids, n_classes: int = 1000, source: str = "") -> list[int]:
    """Model class index (0..n_classes-1, sorted-synset order) of each id (see the module docstring)."""
    missing = [i for i in ids if i not in labels]
    if missing:
        raise LookupError(f"imagenet: no class label for {len(missing)} image(s), e.g. {missing[0]!r} "
                          f"(labels from {source})")
    values = set(labels.values())
    if all(_WNID.match(v) for v in values):
        order = sorted(values)
        if len(order) != n_classes:
            raise ValueError(f"imagenet: the labels ({source}) name {len(order)} synsets; numbering them "
                             f"in sorted order needs all {n_classes}")
        rank = {w: k for k, w in enumerate(order)}
        return [rank[labels[i]] for i in ids]
    try:
        out = [int(labels[i]) for i in ids]
    except ValueError:
        raise ValueError(f"imagenet: labels ({source}) are neither synset ids (nXXXXXXXX) nor integer "
                         f"class indices") from None
    bad = [v for v in out if not 0 <= v < n_classes]
    if bad:
        raise ValueError(f"imagenet: class index {bad[0]} out of range 0..{n_classes - 1} ({source})")
    return out


def one_per_class(labels: dict[str, str]) -> list[str]:
    """For each label, the image with the smallest file number; the picks in file-number order."""
    best: dict[str, tuple[int, str]] = {}
    for image_id, lab in labels.items():
        m = _NUM.search(image_id)
        if not m:
            continue
        k = int(m.group(1))
        if lab not in best or k < best[lab][0]:
            best[lab] = (k, image_id)
    return [i for _, i in sorted(best.values())]


def write_manifest(ids: list[str], path: Path, source: str, labels: dict | None = None) -> None:
    head = [f"# ImageNet val 1k subset: one image per class ({len(ids)} ids).",
            "# Rule (data/imagenet.py): for each class the validation image with the smallest file",
            "# number; listed in file-number order.", f"# Labels source: {source}"]
    if labels:
        head.append("# Second column: the image's label as given by the labels source.")
    rows = [f"{i} {labels[i]}" if labels and i in labels else i for i in ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + rows) + "\n")


class ImageNetVal1k(FolderDataset):
    name = "imagenet_val1k"
    env = "DIPBENCH_IMAGENET_ROOT"
    fix = ("Expected ILSVRC2012 validation images ILSVRC2012_val_XXXXXXXX.JPEG (flat or in synset "
           "folders).")

    def __init__(self, root=None, size: int = 256, labels=None, ids_file=None, n: int | None = None,
                 expect_classes: int = 1000):
        self._labels_arg, self._ids_file, self.expect = labels, ids_file, expect_classes
        super().__init__(root, size)
        if n:
            self._ids = self._ids[:n]
        self._index = None

    def default_ids(self):
        if self._ids_file:
            return read_ids_file(self._ids_file)
        if MANIFEST.exists() and self._labels_arg is None:
            return read_ids_file(MANIFEST)
        ids = one_per_class(read_labels(self.root, self._labels_arg))
        if self.expect and len(ids) != self.expect:
            raise ValueError(f"imagenet: the labels give {len(ids)} classes, expected {self.expect} "
                             f"(labels: {self._labels_arg or 'synset folders under ' + str(self.root)})")
        return ids

    def _list_file(self):
        if self._ids_file:
            return Path(self._ids_file)
        return MANIFEST if MANIFEST.exists() and self._labels_arg is None else None

    def labels(self, ids=None) -> list[int]:
        """Class index (0..999, sorted-synset order) of each id; see the module docstring."""
        ids = self.ids if ids is None else list(ids)
        lst = self._list_file()
        lab = read_id_labels(lst) if lst is not None else {}
        source = str(lst)
        if not lab or any(i not in lab for i in ids):
            if is_devkit_ground_truth(self._labels_arg):
                raise ValueError(
                    f"imagenet: {self._labels_arg} is the devkit ground truth, numbered by the devkit's "
                    f"ILSVRC2012_ID, not the models' sorted-synset order; for class labels give a labels "
                    f"file with synset ids (LOC_val_solution.csv, '<file> <synset>') or synset folders")
            lab = read_labels(self.root, self._labels_arg)
            source = str(self._labels_arg or f"synset folders under {self.root}")
        return class_indices(lab, ids, self.expect or 1000, source)

    def candidates(self, image_id):
        flat = [self.root / f"{image_id}{e}" for e in (".JPEG", ".jpg", ".png")]
        if self._index is None:                       # synset-folder layout: index once
            self._index = {p.stem: p for p in self.root.glob("*/ILSVRC2012_val_*.*")}
        hit = self._index.get(image_id)
        return flat + ([hit] if hit is not None else [])


@register("imagenet256")
def imagenet256(root: str | None = None, labels: str | None = None, ids_file: str | None = None,
                n: int | None = None):
    return ImageNetVal1k(root, 256, labels, ids_file, n)


@register("imagenet64")
def imagenet64(root: str | None = None, labels: str | None = None, ids_file: str | None = None,
               n: int | None = None):
    return ImageNetVal1k(root, 64, labels, ids_file, n)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Generate the ImageNet val 1k (one per class) list.")
    p.add_argument("--root", required=True)
    p.add_argument("--labels", help="labels file (see the module docstring); default: synset folders")
    p.add_argument("--write", action="store_true", help=f"write {MANIFEST}")
    p.add_argument("--out", help="write the list here instead")
    a = p.parse_args(argv)
    lab = read_labels(Path(a.root), a.labels)
    ids = one_per_class(lab)
    src = a.labels or f"synset folders under {a.root}"
    if a.write or a.out:
        keep = None if is_devkit_ground_truth(a.labels) else lab   # devkit ids: not the models' order
        write_manifest(ids, Path(a.out) if a.out else MANIFEST, src, keep)
    else:
        print("\n".join(ids))
    print(f"{len(ids)} ids", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
