"""Metric wrappers: known values (PSNR, SSIM), and both paths of the perceptual metrics.

The absent path is exercised for real: TORCH_HOME and the clean-fid folder point to empty
temporary directories, and the metrics must raise MetricUnavailable naming the file and the
prefetch command, without constructing a network (so without any download attempt).
"""
import math

import numpy as np
import pytest
import torch

import metrics
from metrics import weights as W
from metrics.base import MetricUnavailable


def _imgs(n=3, c=3, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g) * 2 - 1  # [-1, 1]


def test_psnr_of_known_noise_level():
    """A fixed +-delta perturbation in [0, 1] units has MSE = delta^2 exactly, so PSNR = -20 log10(delta).
    Images are kept inside [0.1, 0.9] so the clip to [0, 1] never acts; tolerance 1e-3 dB (float32)."""
    g = torch.Generator().manual_seed(1)
    u = 0.1 + 0.8 * torch.rand(4, 3, 32, 32, generator=g)
    delta = 0.05
    sign = torch.where(torch.rand(u.shape, generator=g) < 0.5, -1.0, 1.0)
    x, y = u * 2 - 1, (u + delta * sign) * 2 - 1
    got = metrics.build("psnr").per_image(y, x, {})
    assert got.shape == (4,)
    np.testing.assert_allclose(got, -20 * math.log10(delta), atol=1e-3)


def test_psnr_vectors_use_the_definition():
    x = torch.zeros(2, 10)
    y = torch.full((2, 10), 0.2)  # 0.1 in [0, 1] units
    np.testing.assert_allclose(metrics.build("psnr").per_image(y, x, {}), 20.0, atol=1e-5)  # float32 input


@pytest.mark.parametrize("name", ["ssim", "ssim_skimage"])
def test_ssim_identical_is_one_and_noise_lowers_it(name):
    x = _imgs()
    m = metrics.build(name)
    np.testing.assert_allclose(m.per_image(x, x, {}), 1.0, atol=1e-6)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    assert (m.per_image(noisy, x, {}) < 0.95).all()


def test_registry_and_directions():
    for n in ("psnr", "ssim", "lpips_alex", "lpips_vgg", "fid", "map_rel_err"):
        assert n in metrics.names()
    assert metrics.build("fid").kind == "per_set"
    assert not metrics.build("lpips_alex").higher_is_better and not metrics.build("fid").higher_is_better


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DIPBENCH_CLEANFID_DIR", str(tmp_path / "cleanfid"))
    return tmp_path


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "fid"])
def test_absent_weights_raise_unavailable_with_prefetch_command(empty_caches, monkeypatch, name):
    import socket

    def no_network(*a, **k):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    m = metrics.build(name)
    x = _imgs()
    with pytest.raises(MetricUnavailable) as e:
        m.per_set(x, x, {}) if m.kind == "per_set" else m.per_image(x, x, {})
    msg = str(e.value)
    assert "prefetch" in msg and str(empty_caches) in msg and "; " not in msg  # "; " separates reasons in the leaderboard


def test_prefetch_check_reports_missing(empty_caches, capsys):
    from metrics import prefetch

    assert prefetch.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "MISSING lpips_alex backbone" in out and "MISSING fid inception" in out


def _standin_backbone(arch: str, path):
    """torchvision-shaped state dict: random conv features; the (unused by LPIPS) classifier stored as
    broadcast views of one zero, so the file stays small."""
    import torchvision.models as tvm

    with torch.device("meta"):
        model = getattr(tvm, arch)()
    g = torch.Generator().manual_seed(0)
    sd = {k: (0.05 * torch.randn(v.shape, generator=g) if k.startswith("features") else torch.zeros(1).expand(v.shape))
          for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)


class _TinyInception(torch.nn.Module):
    """Stand-in for clean-fid's Inception TorchScript: same entry points (``layers``, ``forward``)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(8, 2048, 1))

    def forward(self, x, return_features: bool = False):
        return self.layers(x)


def test_lpips_vgg_looks_for_torchvisions_vgg16_file(empty_caches):
    assert W.backbone_file("vgg").name.startswith("vgg16-") and W.backbone_file("vgg").parent == W.hub_checkpoints()


@pytest.mark.parametrize("net,arch", [("alex", "alexnet")])  # vgg16: same code path, 8 s slower
def test_lpips_with_standin_backbone_where_torchvision_looks(empty_caches, net, arch):
    """With a stand-in backbone at the exact cache path torchvision reads ($TORCH_HOME/hub/checkpoints/
    <file of the weights URL>), LPIPS is computed through the lpips package: 0 for identical images,
    positive otherwise, one value per image.  This proves the wiring, the file location and the API
    use; it does not check the values of the real pretrained weights (absent offline)."""
    _standin_backbone(arch, W.backbone_file(net))
    x = _imgs(n=2)
    m = metrics.build(f"lpips_{net}")
    same = m.per_image(x, x, {})
    diff = m.per_image(-x, x, {})
    assert same.shape == (2,) and np.allclose(same, 0, atol=1e-6) and (diff > 0).all()
    assert m.per_image(x[:, :1], x[:, :1], {}).shape == (2,)  # grayscale goes through too


def test_fid_with_standin_inception(empty_caches):
    """A scripted stand-in saved as clean-fid's Inception file in the configured folder: FID (clean-fid's
    resize + fid_from_feats) is finite and at least the squared distance of the feature means (the
    trace term is non-negative).  Proves the
    wiring and file location, not the real Inception's values."""
    d = empty_caches / "cleanfid"
    d.mkdir()
    torch.jit.script(_TinyInception().eval()).save(str(d / W.INCEPTION_FILE))
    x, z = _imgs(n=6, seed=3), _imgs(n=6, seed=4) * 0.2
    m = metrics.build("fid")
    # one call only: clean-fid's 2048 x 2048 matrix square root takes ~20 s on one core
    from metrics.perceptual import clean_features, inception_model

    model = inception_model()
    f_z, f_x = clean_features(z, model), clean_features(x, model)
    assert f_z.shape == (6, 2048)
    mean_gap = float(((f_z.mean(0) - f_x.mean(0)) ** 2).sum())  # FID >= the squared mean distance
    got = m.per_set(z, x, {})
    assert math.isfinite(got) and got >= mean_gap - 1e-6 and mean_gap > 0
