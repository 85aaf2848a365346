"""deblur_nonlinear: bkse's KernelWizard forward model (operators/deblur_nonlinear.py).

* format fixture: a small KernelWizard written by bkse's own code (its state-dict format, random
  weights) through the real loader; adaptKernel equals bkse's to rel. error <= 1e-5 (measured 0);
* shapes, the [-1, 1] range convention, one kernel code per operator from its seed (same seed ->
  same y, other seed -> other y), the batch shares the code;
* differentiable: the autograd directional derivative equals central finite differences (float64);
* the full-size architecture holds the manifest's names/shapes (default.yml configuration);
* a missing weights file names GOPRO_wVAE.pth and the prefetch command.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import operators
from dipbench.checkpoint_format import CheckpointFormatError
from operators import deblur_nonlinear as D
from operators.base import OperatorShapeError

FIX = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
CFG = json.loads((FIX / "configs.json").read_text())["bkse_small"]
SHAPE = (3, 128, 128)


def _op(seed=0, **kw):
    return D.NonlinearBlur(SHAPE, D.load_kernel_wizard(FIX / "bkse_small.pth", CFG), seed, **kw)


def test_fixture_matches_official_kernel_wizard():
    e = torch.load(FIX / "bkse_small.expected.pt", weights_only=True)
    net = D.load_kernel_wizard(FIX / "bkse_small.pth", CFG)
    x = e["x_u8"].float() / 127.5 - 1
    with torch.no_grad():
        raw = net.adapt_kernel((x + 1) / 2, e["kernel"])
        assert float((raw - e["raw"]).abs().max() / e["raw"].abs().max()) <= 1e-5
        op = _op()
        op.kernel = e["kernel"]                         # the operator's wrapper: DPS/DAPS ranges
        assert torch.equal(op(x), (e["raw"] * 2 - 1).clamp(-1, 1))
    with pytest.raises(CheckpointFormatError, match=r"missing \(recon_trunk.1.conv1"):
        D.load_kernel_wizard(FIX / "bkse_small.pth", dict(CFG, back_RBs=2))


def test_shapes_range_and_seeded_kernel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, *SHAPE, generator=g) * 2 - 1
    a, b, c = _op(seed=5), _op(seed=5), _op(seed=6)
    assert a.kernel.shape == (1, 8 * CFG["nf"], 1, 1) and a.provides == frozenset({"forward"})
    with torch.no_grad():
        ya, yb, yc = a(x), b(x), c(x)
        y0 = a(x[:1])
    assert ya.shape == x.shape and ya.abs().max() <= 1
    assert torch.equal(ya, yb) and not torch.allclose(ya, yc)         # determined by the seed
    assert torch.allclose(y0[0], ya[0], atol=1e-6, rtol=0)             # the batch shares the code
    assert torch.equal(a.kernel, D.kernel_code(SHAPE, CFG["nf"], 5))
    assert D.kernel_code((3, 256, 256), 64, 0).shape == (1, 512, 2, 2)  # DPS's code shape at 256 px
    with pytest.raises(OperatorShapeError, match="multiples of 128"):
        D.NonlinearBlur((3, 64, 64), a.net)
    with pytest.raises(Exception, match="adjoint"):
        a.adjoint(ya)


def test_differentiable_matches_finite_differences():
    """d/dh L(x + h v) at h = 0 for L = <w, A(x)>: autograd vs central differences, float64."""
    op = _op(seed=1)
    op.net.double()
    op.kernel = op.kernel.double()
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(1, *SHAPE, generator=g, dtype=torch.float64) * 1.2 - 0.6).requires_grad_(True)
    w = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    v = torch.randn(1, *SHAPE, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((w * op(x)).sum(), x)
    assert grad.abs().sum() > 0
    h = 1e-6
    with torch.no_grad():
        fd = ((w * op(x + h * v)).sum() - (w * op(x - h * v)).sum()) / (2 * h)
    ad = (grad * v).sum()
    assert abs(float(fd - ad)) <= 1e-6 * max(1.0, abs(float(ad))), (float(fd), float(ad))


def test_full_size_names_and_missing_weights(tmp_path, monkeypatch):
    m = json.loads((Path(__file__).resolve().parent.parent / "priors" / "manifests" / "bkse_gopro_wvae.json").read_text())
    with torch.device("meta"):
        net = D.KernelWizard(**D.CONFIG)
        fake = {k: torch.empty(v) for k, v in m["keys"].items()}
    net.load_state_dict(fake, strict=True, assign=True)
    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    known = {"feature_extractor.0.weight": [64, 3, 3, 3], "feature_extractor.15.conv2.weight": [64, 64, 3, 3],
             "kernel_extractor.model.1.weight": [64, 128, 7, 7], "kernel_extractor.model.16.weight": [1024, 1024, 3, 3],
             "kernel_extractor.model.22.conv_block.5.weight": [1024, 1024, 3, 3],
             "adapter.model.down.0.weight": [64, 64, 4, 4], "adapter.model.up.1.bias": [64],
             "adapter.model.submodule.submodule.submodule.submodule.up.1.weight": [1024, 512, 4, 4],
             "recon_trunk.19.conv1.weight": [64, 64, 3, 3], "recon_trunk.20.weight": [256, 64, 3, 3],
             "recon_trunk.23.weight": [256, 64, 3, 3], "recon_trunk.28.weight": [3, 64, 3, 3]}
    for k, shape in known.items():
        assert sd.get(k) == shape, (k, sd.get(k), shape)
    assert "kernel_extractor.model.1.bias" not in sd and "adapter.model.down.0.bias" not in sd
    from dipbench.prefetch import MissingCheckpoint, load_registry, needed

    assert needed({"tasks": {"nl": {"operator": "deblur_nonlinear"}}}, load_registry()) == ["bkse_gopro_wvae"]
    monkeypatch.setenv("DIPBENCH_RESOURCES", str(tmp_path))
    # building needs no weights (a config validates and a grid plans before prefetch); the first
    # forward pass reads them and names the missing file and the fix
    op = operators.build("deblur_nonlinear", (3, 256, 256), seed=0)
    assert op.y_shape == (3, 256, 256)
    with pytest.raises(MissingCheckpoint) as e:
        op(torch.zeros(1, 3, 256, 256))
    msg = str(e.value)
    assert "GOPRO_wVAE.pth" in msg and str(tmp_path / "checkpoints") in msg and "dipbench.prefetch" in msg
