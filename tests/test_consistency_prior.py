"""cm_imagenet64: the consistency-model prior (priors/consistency.py).

* fixture: a small UNetModel written by openai/consistency_models' own code (its state-dict
  format, random weights) through the real loader; f(x, sigma) and the raw network output equal
  KarrasDenoiser.denoise(distillation=True) to rel. error <= 1e-5 (measured: 0);
* the boundary condition f(x, sigma_min) = x, the consistency_sigma_min attribute, labels;
* full size: the manifest's names/shapes, hand-written names from the published flags, and the
  parameter count, which equals EDM's ImageNet-64 ADM network's (the distillation teacher) to
  within 48 of 296M;
* checkpoints.yaml: three files, prefetch picks the one a config names (default
  cd_imagenet64_lpips); a missing file names the file and the prefetch command.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dipbench.checkpoint_format import CheckpointFormatError
from priors import adm, consistency

FIX = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
CFG = json.loads((FIX / "configs.json").read_text())["cm_small"]


def rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _small(**kw):
    return consistency.build_consistency(FIX / "cm_small.pt", CFG, **kw)


def test_fixture_matches_official_consistency_model():
    e = torch.load(FIX / "cm_small.expected.pt", weights_only=True)
    prior = _small()
    prior.set_labels(e["y"])
    with torch.no_grad():
        assert rel(prior.consistency(e["x"], e["sigma"]), e["consistency"]) <= 1e-5
        assert rel(prior(e["x"], e["sigma"]), e["consistency"]) <= 1e-5          # callable as D too
        s, sd = e["sigma"], 0.5
        raw = prior.net((s ** 2 + sd ** 2).rsqrt().reshape(-1, 1, 1, 1) * e["x"], 250 * s.log(), e["y"])
        assert rel(raw, e["raw"]) <= 1e-5
        # the other labels give other outputs: the class embedding is used
        prior.set_labels((e["y"] + 1) % 10)
        assert rel(prior.consistency(e["x"], e["sigma"])[1:], e["consistency"][1:]) > 1e-3
    # the legacy (guided-diffusion) attention layout on the same weights would not load
    with pytest.raises(CheckpointFormatError, match=r"qkv.weight: file \(96, 32, 1, 1\) vs model \(96, 32, 1\)"):
        consistency.build_consistency(FIX / "cm_small.pt", dict(CFG, attention_layout="legacy"))


def test_boundary_condition_and_interface():
    prior = _small(class_label=3)
    assert prior.consistency_sigma_min == 0.002 == prior.sigma_min and prior.sigma_max == 80.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g) * 2
    with torch.no_grad():
        assert torch.equal(prior.consistency(x, 0.002), x)          # c_skip = 1, c_out = 0
        assert torch.equal(prior.consistency(x, 1e-4), x)           # clamped up to sigma_min
        far = prior.consistency(x, 80.0)
        assert not torch.allclose(far, x)
        assert torch.equal(prior.consistency(x, 500.0), far)        # clamped down to sigma_max
    clipped = _small(class_label=3, clip=True)
    with torch.no_grad():
        c = clipped.consistency(x, 5.0)
    assert c.abs().max() <= 1 and torch.equal(c, prior.consistency(x, 5.0).clamp(-1, 1))
    xg = x.clone().requires_grad_(True)
    prior.consistency(xg, 1.0).sum().backward()                     # differentiable (MAP-GA needs it)
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_labels_required():
    prior = _small()                                                 # class_label true
    x = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ValueError, match="no labels were handed over"):
        prior.consistency(x, 1.0)
    with pytest.raises(ValueError, match="cannot run without a label"):
        _small(class_label="none")
    prior.set_labels([1, 10])
    with pytest.raises(ValueError, match="out of range 0..9"):
        prior.consistency(x, 1.0)


def test_full_size_names_shapes_and_count():
    m = json.loads((Path(consistency.__file__).parent / "manifests" / "cm_imagenet64.json").read_text())
    with torch.device("meta"):
        net = adm.ADMUNet(**consistency.CONFIG_IMAGENET64)
        fake = {k: torch.empty(v) for k, v in m["keys"].items()}
    net.load_state_dict(fake, strict=True, assign=True)
    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    known = {"label_emb.weight": [1000, 768], "time_embed.0.weight": [768, 192],
             "input_blocks.0.0.weight": [192, 3, 3, 3],
             "input_blocks.4.0.in_layers.2.weight": [192, 192, 3, 3],        # resblock down (64 -> 32)
             "input_blocks.5.1.qkv.weight": [1152, 384, 1, 1],              # 2-D attention conv at 32x32
             "input_blocks.5.1.proj_out.weight": [384, 384, 1, 1],
             "middle_block.1.qkv.weight": [2304, 768, 1, 1],
             "input_blocks.1.0.emb_layers.1.weight": [384, 768],            # scale + shift
             "out.2.weight": [3, 192, 3, 3]}
    for k, shape in known.items():
        assert sd.get(k) == shape, (k, sd.get(k), shape)
    assert "input_blocks.1.1.qkv.weight" not in sd                            # no attention at 64x64
    n = sum(v.numel() for v in net.parameters())
    assert abs(n - 295_899_315) <= 48, n          # EDM's ImageNet-64 ADM (manifest edm_imagenet64): 295,899,315


def test_checkpoints_registry_prefetch_and_missing_message(tmp_path, monkeypatch):
    import priors
    from dipbench.prefetch import MissingCheckpoint, load_registry, needed

    reg = load_registry()
    for name in consistency.CHECKPOINTS:
        e = reg[name]
        assert e["prior"] == "cm_imagenet64" and e["file"] == f"{name}.pt"
        assert e["url"] == f"https://openaipublic.blob.core.windows.net/consistency/{name}.pt"
    cfg = {"datasets": {"in64": {"prior": {"name": "edm_imagenet64"}, "consistency": {"name": "cm_imagenet64"}}}}
    assert needed(cfg, reg) == ["cd_imagenet64_lpips", "edm_imagenet64"]
    cfg["datasets"]["in64"]["consistency"]["params"] = {"checkpoint": "ct_imagenet64"}
    assert needed(cfg, reg) == ["ct_imagenet64", "edm_imagenet64"]
    monkeypatch.setenv("DIPBENCH_RESOURCES", str(tmp_path))
    with pytest.raises(MissingCheckpoint) as e:
        priors.build("cm_imagenet64", checkpoint="cd_imagenet64_l2")
    msg = str(e.value)
    assert "cd_imagenet64_l2.pt" in msg and str(tmp_path / "checkpoints") in msg and "dipbench.prefetch" in msg
    with pytest.raises(ValueError, match="unknown checkpoint 'cd_imagenet64'"):
        priors.build("cm_imagenet64", checkpoint="cd_imagenet64")
