"""Class labels from the dataset to a class-conditional prior (``class_label: true``).

* data/imagenet.py: labels in the models' class order (rank of the synset id among all 1000,
  EDM dataset_tool.py / guided-diffusion image_datasets.py), from the list file's second column,
  a labels file or synset folders; the devkit's own class numbering is refused;
* pipeline: the measure step stores the labels beside the measurement; the solve step hands each
  batch's labels to the prior (``set_labels``), end to end with an EDM release-format network:
  the run succeeds with ``class_label: true`` and its reconstruction equals the run with the
  same class fixed by hand (``class_label: <int>``); without labels the run fails saying why.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from data.imagenet import ImageNetVal1k, class_indices, val_name, write_manifest
from dipbench import config as C
from dipbench import pipeline as P


def _wnids(n):
    return [f"n{10000000 + 7 * k:08d}" for k in range(n)]


def _png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (70, 80, 3), dtype=np.uint8)).save(path, format="PNG")


def test_class_indices_sorted_synset_order_and_sources(tmp_path):
    w = _wnids(5)
    lab = {val_name(1): w[3], val_name(2): w[0], val_name(3): w[4], val_name(4): w[1], val_name(5): w[2]}
    assert class_indices(lab, [val_name(1), val_name(3)], n_classes=5) == [3, 4]
    with pytest.raises(ValueError, match="name 5 synsets; numbering them in sorted order needs all 6"):
        class_indices(lab, [val_name(1)], n_classes=6)
    assert class_indices({"a": "17", "b": "999"}, ["b", "a"]) == [999, 17]        # Caffe-style ints
    with pytest.raises(ValueError, match="out of range"):
        class_indices({"a": "1000"}, ["a"])
    with pytest.raises(LookupError, match="no class label"):
        class_indices(lab, ["ILSVRC2012_val_00000009"], n_classes=5)
    # synset folders (the folder is the label), shuffled file numbers
    for k, syn in zip([4, 2, 5, 1, 3], w):
        _png(tmp_path / "root" / syn / f"{val_name(k)}.JPEG", k)
    ds = ImageNetVal1k(str(tmp_path / "root"), 64, expect_classes=5)
    assert ds.labels([val_name(1), val_name(4)]) == [3, 0]
    # a list file with a second column; the devkit ground truth is refused for labels
    lst = tmp_path / "list.txt"
    write_manifest([val_name(1), val_name(2)], lst, "test", {val_name(1): w[3], val_name(2): w[1]})
    assert lst.read_text().splitlines()[-2:] == [f"{val_name(1)} {w[3]}", f"{val_name(2)} {w[1]}"]
    (tmp_path / "gt.txt").write_text("3\n1\n2\n")
    ds = ImageNetVal1k(str(tmp_path / "root"), 64, labels=str(tmp_path / "gt.txt"), expect_classes=3)
    with pytest.raises(ValueError, match="devkit ground truth"):
        ds.labels([val_name(1)])


def _edm_pickle(path):
    """A small 64x64, 1000-class EDMPrecond in the release format (tests/edm_release_writer.py)."""
    from priors import edm_pickle
    from tests import edm_release_writer as W

    kw = dict(img_resolution=64, img_channels=3, label_dim=1000, model_type="DhariwalUNet",
              model_channels=8, channel_mult=[1], num_blocks=1, attn_resolutions=[], dropout=0.0)
    torch.manual_seed(0)
    net = edm_pickle.EDMPrecond(**kw).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    with open(path, "wb") as f:
        W.dump_records({"ema": W.records_from_module(net, kw)}, f)


def _cfg(tmp_path, class_label, with_labels=True):
    root = tmp_path / "imagenet"
    for k in (1, 2):
        _png(root / f"{val_name(k)}.JPEG", k)
    ids = tmp_path / ("ids.txt" if with_labels else "ids_nolabel.txt")
    ids.write_text(f"{val_name(1)} 417\n{val_name(2)} 3\n" if with_labels else f"{val_name(1)}\n{val_name(2)}\n")
    cfg = {"results": str(tmp_path / "res"), "device": "cpu", "batch_size": 2, "seeds": [0],
           "datasets": {"in64": {"images": "imagenet64", "n_images": 2,
                                 "params": {"root": str(root), "ids_file": str(ids)},
                                 "prior": {"name": "edm_imagenet64",
                                           "params": {"path": str(tmp_path / "edm.pkl"),
                                                      "class_label": class_label}}}},
           "tasks": {"half": {"operator": "inpaint_half", "sigma_y": 0.05}},
           "solvers": {"ddrm": {"params": {"steps": 3}}}, "metrics": ["psnr"]}
    return C.validate(cfg)


def test_labels_reach_the_prior_per_batch(tmp_path):
    _edm_pickle(tmp_path / "edm.pkl")
    runs = {}
    for tag, label in (("true", True), ("fixed", 417)):
        cfg = _cfg(tmp_path, label)
        cfg["batch_size"] = 1                                   # one image per batch: one label each
        meas, run = tmp_path / tag / "meas", tmp_path / tag / "run"
        P.measure(cfg, "in64", "half", 0, meas)
        assert np.load(meas / "measurement.npz")["labels"].tolist() == [417, 3]
        runs[tag] = P.solve_or_record(cfg, "in64", "half", "ddrm", 0, meas, run, log=lambda *_: None)
        runs[tag]["recon"] = np.load(run / "recon.npz")["recon"]
    assert runs["true"]["status"] == "ok" and runs["fixed"]["status"] == "ok"
    # image 0 has label 417: identical to the run with 417 fixed; image 1 (label 3) differs from it
    assert np.array_equal(runs["true"]["recon"][0], runs["fixed"]["recon"][0])
    assert not np.allclose(runs["true"]["recon"][1], runs["fixed"]["recon"][1])
    # no labels in the dataset: the measure step fails (an input problem, not a solver result) ...
    cfg = _cfg(tmp_path, True, with_labels=False)
    with pytest.raises(P.InputError, match="class_label: true.*gives no labels"):
        P.measure(cfg, "in64", "half", 0, tmp_path / "none" / "meas")
    # ... and so does the solve step on a measurement without labels
    with pytest.raises(P.InputError, match="gives no labels"):
        P.solve(_cfg(tmp_path, True), "in64", "half", "ddrm", 0, _strip_labels(tmp_path),
                tmp_path / "none" / "run", log=lambda *_: None)


def _strip_labels(tmp_path):
    src, dst = tmp_path / "fixed" / "meas", tmp_path / "nolabels" / "meas"
    dst.mkdir(parents=True)
    z = dict(np.load(src / "measurement.npz"))
    z.pop("labels")
    np.savez(dst / "measurement.npz", **z)
    (dst / "meta.json").write_text((src / "meta.json").read_text())
    return dst


def test_labels_reach_both_networks_of_a_prior_with_a_consistency_model():
    """MAP-GA's ImageNet-64 prior is a denoiser plus a consistency model: both are
    class-conditional, so each batch's labels must reach both (and one of them needing labels is
    enough for the pipeline to require them)."""
    from dipbench.pipeline import InputError, hand_labels, require_labels
    from priors.with_consistency import WithConsistency

    class Net:
        shape = (3, 4, 4)
        consistency_sigma_min = 0.002

        def __init__(self, class_label):
            self.class_label, self.got = class_label, None

        def __call__(self, x, sigma):
            return x

        consistency = __call__

        def set_labels(self, labels):
            self.got = labels

    den, cm = Net(None), Net(True)
    both = WithConsistency(den, cm)
    hand_labels([3, 7], both)
    assert den.got == [3, 7] and cm.got == [3, 7]
    assert both.class_label is True
    with pytest.raises(InputError, match="class_label"):
        require_labels(None, "imagenet64", both)
