"""Release-format checkpoint fixtures (tests/fixtures/checkpoints/, see its README.md) loaded
through the real loaders and compared with the outputs the official code computed on them.

Tolerance: relative error max|ours - official| / max|official| <= 1e-5.  The implementations
do the same float32 operations in a different order (fused attention, other reductions), so
agreement is to a few float32 ulps of the largest output (measured: <= 1.6e-6), far below any
architectural difference (a wrong head layout, scale or skip path changes the outputs by O(1)).
"""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
import torch

from dipbench.checkpoint_format import CheckpointFormatError, RefusedGlobal
from priors import adm, edm_pickle, ldm
from priors.lightning_checkpoint import read_lightning_checkpoint

FIX = Path(__file__).resolve().parent / "fixtures" / "checkpoints"
CONFIGS = json.loads((FIX / "configs.json").read_text())
TOL = 1e-5


def rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def expected(name):
    return torch.load(FIX / f"{name}.expected.pt", map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ ADM (guided-diffusion)
def test_adm_fixture_matches_guided_diffusion():
    """Official UNetModel state dict (th.save(model.state_dict())) -> priors.adm.build_adm: the raw
    network output and the VP->EDM wrapper's x0 equal guided-diffusion's (its p_mean_variance
    pred_xstart at integer steps)."""
    cfg = CONFIGS["adm_small"]
    den = adm.build_adm("ffhq256", FIX / "adm_small.pt", **cfg)
    e = expected("adm_small")
    with torch.no_grad():
        assert rel(den.net(e["x"], e["t"]), e["out"]) <= TOL
        ab = e["alphas_cumprod"].double()
        sigma = ((1 - ab) / ab).sqrt()
        d = den(e["xt"] / ab.sqrt().float().reshape(-1, 1, 1, 1), sigma.float())
    assert rel(d, e["pred_xstart"]) <= TOL


def test_adm_fixture_wrong_architecture_names_the_difference():
    cfg = dict(CONFIGS["adm_small"], num_res_blocks=2)
    with pytest.raises(CheckpointFormatError, match=r"adm_small.pt.*missing \(input_blocks"):
        adm.build_adm("ffhq256", FIX / "adm_small.pt", **cfg)


# ------------------------------------------------------------------ EDM release pickle
def test_edm_fixture_matches_official_edmprecond():
    """The fixture pickle (official record tree, module source replaced by a placeholder) through
    the real loader gives the official EDMPrecond outputs, with one-hot labels and without a
    label (class_label none = the all-zero vector the official forward uses)."""
    net = edm_pickle.load_network(FIX / "edm_small.pkl")
    e = expected("edm_small")
    with torch.no_grad():
        assert rel(net(e["x"], e["sigma"], e["labels"]), e["out"]) <= TOL
        den = edm_pickle.EDMReleaseDenoiser(net)
        den.set_labels(e["labels"].argmax(1))
        assert rel(den(e["x"], e["sigma"]), e["out"]) <= TOL
        assert rel(edm_pickle.EDMReleaseDenoiser(net, "none")(e["x"], e["sigma"]), e["out_nolabel"]) <= TOL
    assert rel(e["out_nolabel"], e["out"]) > 1e-3          # the label matters: the test can fail


def test_edm_fixture_never_runs_the_embedded_source():
    data = edm_pickle.load_release(FIX / "edm_small.pkl")
    assert data["ema"].class_name == "EDMPrecond" and data["loss_fn"].class_name == "EDMLoss"
    assert data["ema"].state["_init_kwargs"]["model_type"] == "DhariwalUNet"
    assert data["ema"].state["_init_args"] == ()


def _reserialised(tmp_path, mutate):
    from tests import edm_release_writer as W

    data = edm_pickle.load_release(FIX / "edm_small.pkl")
    mutate(data)
    p = tmp_path / "mutated.pkl"
    with open(p, "wb") as f:
        W.dump_records(data, f)
    return p


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["ema"].state.pop("_init_kwargs"),
     r"expected field _init_kwargs in the persistent-object state of EDMPrecond .*got keys .*_init_args, "
     r"_is_full_backward_hook.*img_resolution"),
    (lambda d: d["ema"].state["_init_kwargs"].update(new_option=1),
     r"constructor argument\(s\) \['new_option'\] of EDMPrecond are not understood"),
    (lambda d: d["ema"].state.pop("_parameters"), r"expected fields .*_parameters.*missing \['_parameters'\]"),
    (lambda d: d.pop("ema"), r"should hold a dict with an 'ema' entry"),
])
def test_edm_fields_not_understood_fail_clearly(tmp_path, mutate, message):
    p = _reserialised(tmp_path, mutate)
    with pytest.raises(CheckpointFormatError, match=message):
        edm_pickle.load_network(p)


def test_edm_record_version_and_fields_checked(tmp_path):
    from tests import edm_release_writer as W

    data = edm_pickle.load_release(FIX / "edm_small.pkl")
    p = tmp_path / "v7.pkl"

    class V7(W._Persistent):
        def __reduce__(self):
            fn, (meta,), st = super().__reduce__()
            return fn, (dict(meta, version=7),), st

    orig = W._Persistent
    W._Persistent = V7
    try:
        with open(p, "wb") as f:
            W.dump_records(data, f)
    finally:
        W._Persistent = orig
    with pytest.raises(CheckpointFormatError, match="record version 7; this loader reads version 6"):
        edm_pickle.load_release(p)


# ------------------------------------------------------------------ LDM (CompVis latent-diffusion)
def _ldm(path=FIX / "ldm_small.ckpt", **kw):
    c = CONFIGS["ldm_small"]
    return ldm.build_ldm(path, c["unet"], c["vq"], ldm.SCHEDULE, **kw)


def test_ldm_fixture_matches_latent_diffusion():
    """A real Lightning 1.4.2 checkpoint written by latent-diffusion's LatentDiffusion (its
    callback state keyed by Lightning's ModelCheckpoint class): encode, quantise + decode, the
    EMA U-Net's eps and its predicted x0 through the VP->EDM wrapper equal the official ones."""
    prior = _ldm()
    e = expected("ldm_small")
    with torch.no_grad():
        assert rel(prior.encode(e["x"]), e["z"]) <= TOL
        assert rel(prior.vq.quantize(e["z"]), e["zq"]) <= TOL
        assert rel(prior.decode(e["z"]), e["xrec"]) <= TOL
        assert rel(prior.net(e["zt"], e["t"].float()), e["eps"]) <= TOL
        ab = e["alphas_cumprod"].double()
        d = prior(e["zt"] / ab.sqrt().float().reshape(-1, 1, 1, 1), ((1 - ab) / ab).sqrt().float())
        assert rel(d, e["pred_x0"]) <= TOL
        # the EMA weights are what LDM samples with, and they differ from the raw ones here
        raw = _ldm(use_ema=False)
        assert rel(raw.net(e["zt"], e["t"].float()), e["eps"]) > 1e-4


def test_ldm_weights_only_refuses_lightning_checkpoint_but_the_restricted_reader_does_not():
    with pytest.raises(pickle.UnpicklingError):
        torch.load(FIX / "ldm_small.ckpt", map_location="cpu", weights_only=True)
    ck = read_lightning_checkpoint(FIX / "ldm_small.ckpt")
    (cls, state), = ck["callbacks"].items()
    assert cls.qualname == "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"
    assert set(state) >= {"best_model_path", "dirpath"} and ck["pytorch-lightning_version"] == "1.4.2"


@pytest.mark.parametrize("name", ["lightning1.4.2_omegaconf_hparams.ckpt", "lightning2.6.6_omegaconf_hparams.ckpt"])
def test_lightning_omegaconf_entries_become_inert_stand_ins(name):
    """Checkpoints written by real Lightning (1.4.2 and 2.6.6) with OmegaConf hyper-parameters:
    read without importing either package; the LDM loader then says the state dict is not an LDM's."""
    ck = read_lightning_checkpoint(FIX / name)
    hp = ck["hyper_parameters"]["config"]
    assert type(hp).qualname == "omegaconf.dictconfig.DictConfig" and hasattr(hp, "state")
    assert set(ck["state_dict"]) == {"lin.weight", "lin.bias"}
    with pytest.raises(CheckpointFormatError, match=r"entries not understood: \['lin.weight', 'lin.bias'\]"):
        _ldm(FIX / name)


def test_ldm_unknown_entries_and_schedule_fail_clearly(tmp_path):
    sd = read_lightning_checkpoint(FIX / "ldm_small.ckpt")["state_dict"]
    bad = dict(sd, **{"cond_stage_model.embedding.weight": torch.zeros(2, 2)})
    torch.save({"state_dict": bad}, tmp_path / "cond.ckpt")
    with pytest.raises(CheckpointFormatError, match="cond_stage_model.embedding.weight.*conditioning model"):
        _ldm(tmp_path / "cond.ckpt")
    bad = dict(sd, betas=sd["betas"] * 1.1)
    torch.save(bad, tmp_path / "sched.ckpt")                 # a flat state dict is read too
    with pytest.raises(CheckpointFormatError, match="beta schedule"):
        _ldm(tmp_path / "sched.ckpt")
    bad = dict(sd)
    bad["first_stage_model.quant_conv.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(bad, tmp_path / "shape.ckpt")
    with pytest.raises(CheckpointFormatError, match=r"quant_conv.weight: file \(3, 3, 3, 3\) vs model \(3, 3, 1, 1\)"):
        _ldm(tmp_path / "shape.ckpt")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/dipbench_pwned_ldm",))


def test_lightning_reader_refuses_code(tmp_path):
    marker = Path("/tmp/dipbench_pwned_ldm")
    marker.unlink(missing_ok=True)
    torch.save({"state_dict": {}, "callbacks": {"x": _Evil()}}, tmp_path / "evil.ckpt")
    with pytest.raises(RefusedGlobal, match="refusing global (posix|os).system"):
        read_lightning_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()
    buf = io.BytesIO()
    torch.save({"f": eval}, buf)
    (tmp_path / "eval.ckpt").write_bytes(buf.getvalue())
    with pytest.raises(RefusedGlobal, match="(__builtin__|builtins).eval"):
        read_lightning_checkpoint(tmp_path / "eval.ckpt")
