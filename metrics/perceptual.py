"""Perceptual metrics with pretrained backbones: LPIPS (``lpips`` package) and FID (clean-fid).

Which LPIPS net each paper used (values are not comparable across nets, so every
table names its net):
  * ``lpips_vgg``  -- DPS and DiffPIR (``lpips``, VGG); DAPS and InverseBench use piq's VGG LPIPS
    (``replace_pooling=True``, not identical to this one).
  * ``lpips_alex`` -- MGPS (``lpips``, Alex); RED-diff and deepinv (torchmetrics, Alex by default).
  * VML-MAP and MAP-GA do not say which net they used.

``fid`` (per set): clean-fid's "clean" pipeline -- 8-bit images, clean-fid's PIL-bicubic resize to
299 x 299, the Inception-v3 TorchScript features, ``fid_from_feats`` -- between the set of
reconstructions and the set of ground-truth images of the same run (dataset x task x solver x
seed); non-finite reconstructions are left out of both sets.  Caveat: FID estimates two
2048-dimensional covariances, so on a handful of 32x32 images (the embedded CI sets) it is
dominated by small-sample bias and upsampling artefacts -- a smoke signal, not a number to compare
with papers (which use 1k images at 256 px).

Offline the backbone weights are absent: both metrics raise ``MetricUnavailable`` with the path
they looked at and the prefetch command; they check the files exist *before* constructing a
network, so nothing ever tries (and hangs on) a download.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from . import weights as W
from .base import Metric, MetricUnavailable, to_unit
from .registry import register


def _missing(what: str, path) -> MetricUnavailable:
    return MetricUnavailable(f"{what} weights not cached (looked for {path}), run `{W.PREFETCH_CMD}` "
                             f"on a machine with internet access")


@functools.lru_cache(maxsize=None)
def _lpips_net(net: str, backbone_path: str):
    import lpips

    with W.socket_timeout(5.0):
        return lpips.LPIPS(net=net, pretrained=True, verbose=False).eval()


def lpips_model(net: str):
    """The lpips.LPIPS module for ``net``; MetricUnavailable if a weight file is missing."""
    head = W.lpips_head_file(net)
    if not head.is_file():
        raise _missing(f"LPIPS-{net} linear-head", head)
    bb = W.backbone_file(net)
    if not bb.is_file():
        raise _missing(f"LPIPS-{net} backbone (torchvision)", bb)
    return _lpips_net(net, str(bb))  # cache key includes the path: a new TORCH_HOME, a new net


class LPIPSMetric(Metric):
    net = "alex"
    higher_is_better = False

    def per_image(self, recon, truth, ctx):
        if recon.ndim != 4 or recon.shape[1] not in (1, 3):
            raise MetricUnavailable("LPIPS needs images (N, 1 or 3, H, W)")
        if min(recon.shape[-2:]) < 32:
            raise MetricUnavailable("LPIPS needs images of at least 32 x 32 pixels")
        model = lpips_model(self.net)
        r, t = recon.float().clamp(-1, 1), truth.float().clamp(-1, 1)  # lpips takes [-1, 1]
        if r.shape[1] == 1:
            r, t = r.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
        out = []
        with torch.no_grad():
            for i in range(0, len(r), 16):
                out.append(model(r[i:i + 16], t[i:i + 16]).reshape(-1).double())
        return torch.cat(out).numpy()


@register("lpips_alex")
class LPIPSAlex(LPIPSMetric):
    """LPIPS with the AlexNet backbone (MGPS; torchmetrics' default: RED-diff, deepinv)."""
    name, net = "lpips_alex", "alex"


@register("lpips_vgg")
class LPIPSVGG(LPIPSMetric):
    """LPIPS with the VGG-16 backbone (DPS, DiffPIR; DAPS/InverseBench use piq's variant)."""
    name, net = "lpips_vgg", "vgg"


@functools.lru_cache(maxsize=None)
def _inception(folder: str):
    from cleanfid.inception_torchscript import InceptionV3W

    with W.socket_timeout(5.0):
        return InceptionV3W(folder, download=False, resize_inside=False).eval()


def inception_model():
    d = W.inception_dir()
    if d is None:
        raise _missing("FID Inception-v3 (clean-fid)", " or ".join(str(p / W.INCEPTION_FILE) for p in W.cleanfid_dirs()))
    return _inception(str(d))


def clean_features(images, model, batch: int = 32) -> np.ndarray:
    """clean-fid features of float images in [-1, 1] (N, C, H, W): 8-bit, clean resize, Inception."""
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")
    u8 = (to_unit(images.float()) * 255).round().to(torch.uint8)
    if u8.shape[1] == 1:
        u8 = u8.expand(-1, 3, -1, -1)
    u8 = u8.permute(0, 2, 3, 1).numpy()
    feats = []
    for i in range(0, len(u8), batch):
        x = np.stack([resize(im) for im in u8[i:i + batch]]).transpose(0, 3, 1, 2)
        with torch.no_grad():
            feats.append(model(torch.from_numpy(np.ascontiguousarray(x)).float()).double().numpy())
    return np.concatenate(feats)


@register("fid")
class FID(Metric):
    """clean-fid FID between the reconstructions and the ground truth of one run (per set)."""
    name, higher_is_better, kind = "fid", False, "per_set"

    def per_set(self, recon, truth, ctx):
        if recon.ndim != 4 or recon.shape[1] not in (1, 3):
            raise MetricUnavailable("FID needs images (N, 1 or 3, H, W)")
        finite = torch.isfinite(recon.reshape(len(recon), -1)).all(1)
        if int(finite.sum()) < 2:
            raise MetricUnavailable("FID needs at least two finite reconstructions")
        model = inception_model()
        from cleanfid.fid import fid_from_feats

        f_r = clean_features(recon[finite], model)
        f_t = clean_features(truth[finite], model)
        try:
            return float(fid_from_feats(f_r, f_t))
        except ValueError as e:  # clean-fid refuses a covariance square root with a large imaginary part
            if "Imaginary" not in str(e):
                raise
            return float("nan")
