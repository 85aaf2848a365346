"""Paper dataset loaders on tiny images written to tmp_path (no real data needed).

Checks: ids and file layouts, the ADM centre-crop/resize convention (exact on constant images and
on a known crop), [-1, 1] scaling, the missing-file message (names the first missing file and the
count), env-var fallback, and the ImageNet one-per-class rule (invariant to label numbering).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data.ffhq import center_crop_arr
from data.imagenet import one_per_class, read_labels, val_name


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)


def test_registered():
    for name in ("ffhq256", "celebahq256", "imagenet256", "imagenet64"):
        assert name in data.names()


def test_center_crop_convention():
    # a 24x12 image (short side < 2x target: no halving) -> bicubic to 16x8, then centre 8x8 crop
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (12, 24, 3)).astype(np.uint8)
    out = center_crop_arr(Image.fromarray(a), 8)
    ref = np.asarray(Image.fromarray(a).resize((16, 8), Image.BICUBIC))[:, 4:12]
    assert out.shape == (8, 8, 3) and np.array_equal(out, ref)
    # box halving first when the short side is >= 2x the target: a constant stays constant
    c = np.full((64, 96, 3), 77, np.uint8)
    assert np.all(center_crop_arr(Image.fromarray(c), 16) == 77)


def test_ffhq_flat_and_release_layout(tmp_path, monkeypatch):
    for i in range(3):
        _png(tmp_path / "flat" / f"{i:05d}.png", np.full((32, 32, 3), 10 * i))
        _png(tmp_path / "rel" / "00000" / f"{i:05d}.png", np.full((64, 64, 3), 255))
    ds = data.build("ffhq256", root=str(tmp_path / "flat"), n=3, size=16)
    assert ds.ids == ["00000", "00001", "00002"]
    x = ds.load()
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[2], torch.full((3, 16, 16), 20 / 127.5 - 1))
    monkeypatch.setenv("DIPBENCH_FFHQ_ROOT", str(tmp_path / "rel"))
    y = data.build("ffhq256", n=3, size=16).load(["00001"])
    assert torch.equal(y, torch.ones(1, 3, 16, 16))
    assert len(data.build("ffhq256", root=str(tmp_path / "rel")).ids) == 1000


def test_ffhq_missing_message(tmp_path):
    _png(tmp_path / "00000.png", np.zeros((16, 16, 3)))
    ds = data.build("ffhq256", root=str(tmp_path), n=5, size=16)
    with pytest.raises(FileNotFoundError) as e:
        ds.load()
    msg = str(e.value)
    assert "4 of 5 images missing" in msg and str(tmp_path / "00001.png") in msg
    assert "DIPBENCH_FFHQ_ROOT" in msg


def test_ffhq_no_root(monkeypatch):
    monkeypatch.delenv("DIPBENCH_FFHQ_ROOT", raising=False)
    with pytest.raises(ValueError, match="DIPBENCH_FFHQ_ROOT"):
        data.build("ffhq256")


def test_celebahq_names(tmp_path):
    _png(tmp_path / "29000.jpg", np.full((32, 32, 3), 255))     # CelebAMask-HQ style
    _png(tmp_path / "29001.png", np.zeros((32, 32, 3)))
    ds = data.build("celebahq256", root=str(tmp_path), size=8, n=2)
    assert ds.ids == ["29000", "29001"]
    x = ds.load()
    assert x.shape == (2, 3, 8, 8) and x[0].min() > 0.9 and x[1].max() == -1
    full = data.build("celebahq256", root=str(tmp_path))
    assert len(full.ids) == 100
    with pytest.raises(FileNotFoundError, match="98 of 100 images missing.*29002"):
        full.load()


def test_imagenet_one_per_class_rule(tmp_path):
    # 12 val images, 3 classes; devkit-style ground truth, one label per line
    gt = [3, 1, 3, 2, 1, 2, 3, 1, 2, 2, 3, 1]
    (tmp_path / "gt.txt").write_text("\n".join(map(str, gt)) + "\n")
    labels = read_labels(tmp_path, tmp_path / "gt.txt")
    assert one_per_class(labels) == [val_name(1), val_name(2), val_name(4)]
    # relabelled classes (another numbering): the same picks
    perm = {"1": "n02", "2": "n03", "3": "n01"}
    (tmp_path / "val.txt").write_text("".join(f"{val_name(k + 1)}.JPEG {perm[str(g)]}\n"
                                              for k, g in enumerate(gt)))
    assert one_per_class(read_labels(tmp_path, tmp_path / "val.txt")) == [val_name(1), val_name(2), val_name(4)]


def test_imagenet_loader_synset_folders(tmp_path):
    gt = {1: "n01", 2: "n02", 3: "n01", 4: "n02"}
    for k, syn in gt.items():
        _png(tmp_path / syn / f"{val_name(k)}.JPEG", np.full((40, 60, 3), 50 * k))
    from data.imagenet import ImageNetVal1k

    with pytest.raises(ValueError, match="2 classes, expected 1000"):
        data.build("imagenet64", root=str(tmp_path))
    ds = ImageNetVal1k(str(tmp_path), 64, expect_classes=2)
    assert ds.ids == [val_name(1), val_name(2)]
    x = ds.load()
    assert x.shape == (2, 3, 64, 64)
    assert torch.allclose(x[1], torch.full_like(x[1], 100 / 127.5 - 1), atol=1e-6)
    ds256 = type(ds)(str(tmp_path), 256, ids_file=None, expect_classes=2)
    assert ds256.load([val_name(2)]).shape == (1, 3, 256, 256)


def test_imagenet_wrong_class_count_and_missing(tmp_path):
    (tmp_path / "gt.txt").write_text("1\n2\n")
    with pytest.raises(ValueError, match="2 classes, expected 1000"):
        data.build("imagenet256", root=str(tmp_path), labels=str(tmp_path / "gt.txt"))
    from data.imagenet import ImageNetVal1k

    ds = ImageNetVal1k(str(tmp_path), 64, labels=str(tmp_path / "gt.txt"), expect_classes=2)
    with pytest.raises(FileNotFoundError, match=r"2 of 2 images missing.*ILSVRC2012_val_00000001\.JPEG"):
        ds.load()
