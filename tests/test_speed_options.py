"""GPU speed switches (priors/speed.py, config `speed`): off by default, validated by the schema;
channels-last gives the same network outputs and input gradients on a CPU; autocast and compile
are ignored on a CPU with a message naming the switch; a prior without a network ignores them.
(Their speed-ups need a GPU and are not measured here.)"""
from __future__ import annotations

import copy

import pytest
import torch
import yaml

import priors
from dipbench.config import ConfigError, validate
from dipbench.paths import ROOT
from priors import speed


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def outputs(prior, x, s=0.7):
    xr = x.clone().requires_grad_(True)
    out = prior(xr, s)
    (g,) = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum(), xr)
    return out.detach(), g


def test_channels_last_keeps_outputs_and_gradients_on_cpu():
    """Same weights, NHWC layout: convolutions sum in another order, so agreement to float32
    rounding (atol 1e-5 on outputs of order 1, gradients likewise) -- not bit equality."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = outputs(priors.build("edm_unet"), x)
    p = priors.build("edm_unet")
    notes = speed.apply(p, {"channels_last": True}, "cpu", log=lambda m: None)
    assert notes and "channels_last" in notes[-1]
    got = outputs(p, x)
    assert got[0].is_contiguous()
    assert torch.allclose(got[0], ref[0], atol=1e-5), (got[0] - ref[0]).abs().max()
    assert torch.allclose(got[1], ref[1], atol=1e-5), (got[1] - ref[1]).abs().max()


def test_autocast_and_compile_are_ignored_on_cpu_with_a_message():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = outputs(priors.build("edm_unet"), x)
    p = priors.build("edm_unet")
    said = []
    speed.apply(p, {"autocast": "bf16", "compile": True}, "cpu", log=said.append)
    assert any("speed.autocast=bf16 ignored" in m and "CUDA" in m for m in said), said
    assert any("speed.compile ignored" in m and "CUDA" in m for m in said), said
    got = outputs(p, x)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_prior_without_a_network_ignores_the_switches():
    p = priors.build("gaussian", mean=torch.zeros(4), cov=torch.eye(4, dtype=torch.float64))
    said = []
    assert speed.apply(p, {"channels_last": True}, "cpu", log=said.append) == said
    assert said and "no network module" in said[0]


def test_off_by_default():
    p = priors.build("edm_unet")
    net = p.net
    assert speed.apply(p, None, "cpu") == [] and speed.apply(p, {}, "cpu") == []
    assert p.net is net


@pytest.fixture
def cfg():
    with open(ROOT / "config" / "ci.yaml") as f:
        return yaml.safe_load(f)


def test_schema_accepts_the_switches(cfg):
    c = copy.deepcopy(cfg)
    c["speed"] = {"channels_last": True, "autocast": "bf16", "compile": False}
    validate(c)


@pytest.mark.parametrize("bad,needle", [({"autocast": "fp8"}, "fp8"), ({"channel_last": True}, "channel_last"),
                                        ({"compile": "yes"}, "yes")])
def test_schema_refuses_bad_switches(cfg, bad, needle):
    cfg["speed"] = bad
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert needle in str(e.value)
