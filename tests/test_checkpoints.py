"""Checkpoint priors without the checkpoints: architectures, state-dict names/shapes, safe unpickling.

* forward shapes of small random-weight instances (ADM U-Net, its VP->EDM wrapper, EDM's
  DhariwalUNet/EDMPrecond);
* the full-size architectures built on the meta device (no memory) load a state dict with the
  manifest's names and shapes strictly, and hold hand-written parameter names/shapes that follow
  from the published configurations (independent of the manifest), plus the published parameter
  counts (EDM ImageNet-64 ADM: 296M; ADM ImageNet-256: ~554M);
* the VP->EDM wrapper is exact on its own definition: with a network that returns the true
  noise eps, D(x0 + sigma eps, sigma) = x0 to float precision (tolerance 1e-5);
* the restricted unpickler reads a pickle laid out like an EDM release (persistent-object records
  carrying module source, tensors, ModuleDicts) into a network equal to the original (outputs
  identical), never runs the embedded source, and refuses os.system / unknown classes;
* EDM class labels (true / int / none) and the error path through the pipeline's build_prior.
The release-format fixtures written by the official code are tested in test_checkpoint_fixtures.py.
"""
from __future__ import annotations

import collections
import io
import json
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from priors import adm, edm_pickle

MANIFESTS = Path(__file__).resolve().parent.parent / "priors" / "manifests"


def _manifest(name):
    return json.loads((MANIFESTS / f"{name}.json").read_text())


SMALL_ADM = dict(image_size=32, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
                 attention_resolutions=(4,), channel_mult=(1, 2, 2), num_heads=4, num_head_channels=16,
                 use_scale_shift_norm=True, resblock_updown=True)


@pytest.mark.parametrize("updown,ss", [(True, True), (False, False)])
def test_adm_small_forward_shapes(updown, ss):
    torch.manual_seed(0)
    net = adm.ADMUNet(**{**SMALL_ADM, "resblock_updown": updown, "use_scale_shift_norm": ss}).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = net(x, torch.tensor([3.0, 500.5]))
    assert out.shape == (2, 6, 32, 32)
    den = adm.VPEpsDenoiser(net.requires_grad_(False), (3, 32, 32))
    d = den(x, torch.tensor([0.1, 5.0]))
    assert d.shape == x.shape and torch.isfinite(d).all()
    assert 0.009 < den.sigma_min < 0.011 and 150 < den.sigma_max < 160


def test_vp_wrapper_exact_with_oracle_eps():
    """If eps_hat is the true noise, x - sigma eps_hat recovers x0 exactly (up to float error)."""
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    eps = torch.randn(3, 3, 8, 8)
    sig = torch.tensor([0.05, 1.0, 20.0])
    table = adm.vp_sigmas()

    class Oracle(torch.nn.Module):
        def forward(self, xvp, t):
            # the VP sample at t must be sqrt(abar) x0 + sqrt(1-abar) eps with abar = 1/(1+sigma^2)
            s = torch.exp(torch.lerp(table.log()[t.long()], table.log()[(t.long() + 1).clamp(max=999)],
                                     (t - t.floor()).double())).float().reshape(-1, 1, 1, 1)
            ab = 1 / (1 + s ** 2)
            e = (xvp - ab.sqrt() * x0) / (1 - ab).sqrt()
            return torch.cat([e, torch.zeros_like(e)], 1)

    den = adm.VPEpsDenoiser(Oracle(), (3, 8, 8))
    d = den(x0 + sig.reshape(-1, 1, 1, 1) * eps, sig)
    assert torch.allclose(d, x0, atol=1e-4)
    # timestep mapping: integer steps map back to themselves
    t = adm.sigma_to_t(table[[0, 10, 500, 999]], table)
    assert torch.allclose(t, torch.tensor([0.0, 10.0, 500.0, 999.0], dtype=torch.float64), atol=1e-6)


KNOWN_ADM = {
    "adm_ffhq256": {
        "time_embed.0.weight": [512, 128], "time_embed.2.weight": [512, 512],
        "input_blocks.0.0.weight": [128, 3, 3, 3],
        "input_blocks.1.0.emb_layers.1.weight": [256, 512],          # scale+shift: 2 x 128
        "input_blocks.2.0.in_layers.2.weight": [128, 128, 3, 3],     # resblock downsample
        "input_blocks.5.0.skip_connection.weight": [256, 128, 1, 1],
        "input_blocks.9.1.qkv.weight": [1536, 512, 1],               # attention at 16x16
        "input_blocks.9.1.proj_out.weight": [512, 512, 1],
        "middle_block.1.qkv.weight": [1536, 512, 1],
        "output_blocks.0.0.in_layers.0.weight": [1024],
        "out.2.weight": [6, 128, 3, 3],                              # eps + learned variance
    },
    "adm_imagenet256": {
        "time_embed.0.weight": [1024, 256], "input_blocks.0.0.weight": [256, 3, 3, 3],
        "input_blocks.10.1.qkv.weight": [1536, 512, 1],              # attention at 32x32
        "input_blocks.13.1.qkv.weight": [3072, 1024, 1],             # at 16x16
        "input_blocks.17.1.qkv.weight": [3072, 1024, 1],             # at 8x8
        "output_blocks.17.0.in_layers.0.weight": [512],
        "out.2.weight": [6, 256, 3, 3],
    },
}
ABSENT_ADM = {"adm_ffhq256": ["input_blocks.1.1.qkv.weight", "label_emb.weight", "input_blocks.2.0.op.weight"],
              "adm_imagenet256": ["input_blocks.7.1.qkv.weight", "label_emb.weight"]}


@pytest.mark.parametrize("name", ["adm_ffhq256", "adm_imagenet256"])
def test_adm_full_size_state_dict_names_and_shapes(name):
    m = _manifest(name)
    with torch.device("meta"):
        net = adm.ADMUNet(**adm.CONFIGS[name[len("adm_"):]])
        fake = {k: torch.empty(v) for k, v in m["keys"].items()}
    net.load_state_dict(fake, strict=True, assign=True)     # names and shapes only
    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    for k, shape in KNOWN_ADM[name].items():
        assert sd.get(k) == shape, (k, sd.get(k), shape)
    for k in ABSENT_ADM[name]:
        assert k not in sd
    n = sum(v.numel() for v in net.parameters())
    if name == "adm_imagenet256":
        assert abs(n - 554e6) / 554e6 < 0.01, n
    with pytest.raises(RuntimeError):                       # a wrong shape is refused
        bad = dict(fake)
        k = "out.2.weight"
        with torch.device("meta"):
            bad[k] = torch.empty(3, bad[k].shape[1], 3, 3)
        net.load_state_dict(bad, strict=True, assign=True)


# ------------------------------------------------------------------ EDM release pickle
SMALL_EDM = dict(img_resolution=16, img_channels=3, label_dim=10, model_type="DhariwalUNet",
                 model_channels=32, channel_mult=[1, 2], channel_mult_emb=4, num_blocks=1,
                 attn_resolutions=[8], dropout=0.1)

KNOWN_EDM = {
    "model.map_layer0.weight": [768, 192], "model.map_layer1.weight": [768, 768],
    "model.map_label.weight": [768, 1000], "model.enc.64x64_conv.weight": [192, 3, 3, 3],
    "model.enc.64x64_block0.affine.weight": [384, 768],
    "model.enc.32x32_down.conv0.resample_filter": [1, 1, 2, 2],
    "model.enc.32x32_block0.qkv.weight": [1152, 384, 1, 1],
    "model.enc.32x32_block0.skip.weight": [384, 192, 1, 1],
    "model.dec.8x8_in0.qkv.weight": [2304, 768, 1, 1],
    "model.out_conv.weight": [3, 192, 3, 3],
}


def test_edm_small_forward_shapes():
    torch.manual_seed(0)
    net = edm_pickle.EDMPrecond(**SMALL_EDM).eval().requires_grad_(False)
    den = edm_pickle.EDMReleaseDenoiser(net, class_label=3)
    x = torch.randn(2, 3, 16, 16)
    assert den(x, torch.tensor([0.5, 10.0])).shape == (2, 3, 16, 16)
    assert edm_pickle.EDMReleaseDenoiser(net, class_label=None)(x, 1.0).shape == (2, 3, 16, 16)


def test_edm_class_label_modes():
    """true = the labels handed over per batch; int = one class for all; none = all-zero vector
    (what the official EDMPrecond feeds without a label, equal to skipping the label embedding)."""
    torch.manual_seed(0)
    net = edm_pickle.EDMPrecond(**SMALL_EDM).eval().requires_grad_(False)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, s = torch.randn(2, 3, 16, 16), torch.tensor([0.5, 2.0])
    with torch.no_grad():
        want = net(x, s, torch.eye(10)[[3, 7]])
        zeros = net(x, s, torch.zeros(2, 10))
        den = edm_pickle.EDMReleaseDenoiser(net)                 # default: class_label true
        with pytest.raises(ValueError, match="no labels were handed over"):
            den(x, s)
        den.set_labels([3, 7])
        assert torch.equal(den(x, s), want)
        with pytest.raises(ValueError, match="2 labels handed over for a batch of 3"):
            den(torch.randn(3, 3, 16, 16), 1.0)
        den.set_labels([3, 12])
        with pytest.raises(ValueError, match="out of range"):
            den(x, s)
        assert torch.equal(edm_pickle.EDMReleaseDenoiser(net, "none")(x, s), zeros)
        assert torch.equal(edm_pickle.EDMReleaseDenoiser(net, None)(x, s), net(x, s, None))
        assert torch.equal(edm_pickle.EDMReleaseDenoiser(net, 7)(x, s)[1], want[1])
    assert not torch.allclose(zeros, want)
    with pytest.raises(ValueError, match="class_label must be"):
        edm_pickle.EDMReleaseDenoiser(net, "cat")


def test_edm_full_size_state_dict_names_and_shapes():
    m = _manifest("edm_imagenet64")
    with torch.device("meta"):
        net = edm_pickle.EDMPrecond(**m["config"])
        fake = {k: torch.empty(v) for k, v in m["keys"].items()}
    net.load_state_dict(fake, strict=True, assign=True)
    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    for k, shape in KNOWN_EDM.items():
        assert sd.get(k) == shape, (k, sd.get(k), shape)
    assert "model.map_augment.weight" not in sd and "model.enc.32x32_down.skip.weight" not in sd
    n = sum(v.numel() for v in net.parameters())
    assert abs(n - 296e6) / 296e6 < 0.005, n


MARKER = {"ran": False}


def _fake_persistence_module():
    mod = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):   # never called when loading: our unpickler maps it
        raise AssertionError

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    return mod


class _Persist:
    """Mimics torch_utils.persistence's reduce: (reconstruct, (meta,)) with module source inside."""

    def __init__(self, fn, class_name, state):
        self.fn, self.class_name, self.state = fn, class_name, state

    def __reduce__(self):
        src = "import os\nos.system('touch /tmp/dipbench_pwned')\nraise SystemExit\n"
        return (self.fn, (dict(type="class", version=6, module_src=src, class_name=self.class_name,
                               state=self.state),))


def _as_release(module, fn):
    """A module tree as the release pickles store it (persistent records; ModuleDict as plain objects)."""
    kids = collections.OrderedDict((k, _as_release(v, fn) if v is not None else None)
                                   for k, v in module._modules.items())
    state = dict(training=False, _parameters=collections.OrderedDict(
                     (k, v) for k, v in module._parameters.items()),
                 _buffers=collections.OrderedDict(module._buffers.items()),
                 _non_persistent_buffers_set=set(), _modules=kids)
    if isinstance(module, torch.nn.ModuleDict):       # pickled as a plain torch object (NEWOBJ + BUILD)
        md = torch.nn.ModuleDict()
        md.__dict__["_modules"] = kids
        return md
    if isinstance(module, edm_pickle.EDMPrecond):            # persistence.py:108-109
        state["_init_args"], state["_init_kwargs"] = (), dict(SMALL_EDM)
    return _Persist(fn, type(module).__name__, state)


def _release_bytes(net, extra=None):
    mod = _fake_persistence_module()
    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules["torch_utils"] = types.ModuleType("torch_utils")
    sys.modules["torch_utils.persistence"] = mod
    try:
        data = {"ema": _as_release(net, mod._reconstruct_persistent_obj), "augment_pipe": None,
                "dataset_kwargs": {"resolution": 16}}
        if extra:
            data.update(extra)
        return pickle.dumps(data, protocol=4)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_release_pickle_roundtrip_without_running_code(tmp_path):
    marker = Path("/tmp/dipbench_pwned")
    marker.unlink(missing_ok=True)
    torch.manual_seed(1)
    net = edm_pickle.EDMPrecond(**SMALL_EDM).eval()
    for p in net.parameters():                  # non-zero everywhere (zero-init layers included)
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "release.pkl"
    path.write_bytes(_release_bytes(net))
    loaded = edm_pickle.load_network(path)
    assert not marker.exists()
    x = torch.randn(2, 3, 16, 16)
    s = torch.tensor([0.3, 3.0])
    lab = torch.eye(10)[[1, 7]]
    with torch.no_grad():
        assert torch.equal(loaded(x, s, lab), net(x, s, lab))


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/dipbench_pwned",))


def test_release_unpickler_refuses_os_system(tmp_path):
    marker = Path("/tmp/dipbench_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"ema": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing global"):
        edm_pickle.load_release(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"ema": eval}))      # builtins.eval by reference
    with pytest.raises(pickle.UnpicklingError):
        edm_pickle.load_release(path)


def test_release_unpickler_refuses_unknown_class(tmp_path):
    net = edm_pickle.Linear(2, 2)
    mod = _fake_persistence_module()
    sys.modules.setdefault("torch_utils", types.ModuleType("torch_utils"))
    old = sys.modules.get("torch_utils.persistence")
    sys.modules["torch_utils.persistence"] = mod
    try:
        blob = pickle.dumps({"ema": _Persist(mod._reconstruct_persistent_obj, "Backdoor", {"_parameters": {}})})
    finally:
        if old is None:
            sys.modules.pop("torch_utils.persistence", None)
        else:
            sys.modules["torch_utils.persistence"] = old
    with pytest.raises(pickle.UnpicklingError, match="Backdoor"):
        edm_pickle.ReleaseUnpickler(io.BytesIO(blob)).load()
    assert net.weight.shape == (2, 2)


def test_missing_checkpoint_message(tmp_path, monkeypatch):
    import priors
    from dipbench.prefetch import MissingCheckpoint

    monkeypatch.setenv("DIPBENCH_RESOURCES", str(tmp_path))
    for name, file in [("adm_ffhq256", "ffhq_10m.pt"), ("adm_imagenet256", "256x256_diffusion_uncond.pt"),
                       ("edm_imagenet64", "edm-imagenet-64x64-cond-adm.pkl"),
                       ("ldm_celebahq256", "ldm_celebahq256.ckpt"), ("ldm_ffhq256", "ldm_ffhq256.ckpt")]:
        with pytest.raises(MissingCheckpoint) as e:
            priors.build(name)
        msg = str(e.value)
        assert file in msg and str(tmp_path / "checkpoints" / file) in msg and "dipbench.prefetch" in msg


# ------------------------------------------------------------------ CelebA-HQ LDM (VQ-f4)
KNOWN_LDM = {
    "model.diffusion_model.time_embed.0.weight": [896, 224],
    "model.diffusion_model.input_blocks.0.0.weight": [224, 3, 3, 3],
    "model.diffusion_model.input_blocks.1.0.emb_layers.1.weight": [224, 896],   # no scale-shift
    "model.diffusion_model.input_blocks.3.0.op.weight": [224, 224, 3, 3],       # conv downsample
    "model.diffusion_model.input_blocks.4.1.qkv.weight": [1344, 448, 1],        # attention at ds 2
    "model.diffusion_model.out.2.weight": [3, 224, 3, 3],                       # eps only
    "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
    "first_stage_model.encoder.down.0.downsample.conv.weight": [128, 128, 3, 3],
    "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight": [256, 128, 1, 1],
    "first_stage_model.encoder.mid.attn_1.q.weight": [512, 512, 1, 1],
    "first_stage_model.encoder.conv_out.weight": [3, 512, 3, 3],
    "first_stage_model.quantize.embedding.weight": [8192, 3],
    "first_stage_model.quant_conv.weight": [3, 3, 1, 1],
    "first_stage_model.decoder.conv_in.weight": [512, 3, 3, 3],
    "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": [128, 256, 1, 1],
    "first_stage_model.decoder.up.2.upsample.conv.weight": [512, 512, 3, 3],
    "first_stage_model.decoder.conv_out.weight": [3, 128, 3, 3],
}


@pytest.mark.parametrize("name", ["ldm_celebahq256", "ldm_ffhq256"])
def test_ldm_full_size_state_dict_names_and_shapes(name):
    from priors import ldm

    m = _manifest(name)
    with torch.device("meta"):
        unet, vq = adm.ADMUNet(**ldm.UNET_CONFIG), ldm.VQModel(**ldm.VQ_CONFIG)
        fake = {k: torch.empty(v) for k, v in m["keys"].items()}
    fake["model_ema.decay"] = torch.empty(())                   # ignored by the split
    u, v = ldm.split_state_dict({"state_dict": fake}, use_ema=False)
    unet.load_state_dict(u, strict=True, assign=True)
    vq.load_state_dict(v, strict=True, assign=True)
    sd = {f"model.diffusion_model.{k}": list(t.shape) for k, t in unet.state_dict().items()}
    sd.update({f"first_stage_model.{k}": list(t.shape) for k, t in vq.state_dict().items()})
    for k, shape in KNOWN_LDM.items():
        assert sd.get(k) == shape, (k, sd.get(k), shape)
    n = sum(t.numel() for t in unet.parameters())
    assert abs(n - 274e6) / 274e6 < 0.005, n                    # LDM paper: CelebA-HQ LDM-4, 274M


def test_ldm_small_forward_and_ema_split():
    from priors import ldm

    torch.manual_seed(0)
    ucfg = dict(image_size=8, in_channels=3, model_channels=32, out_channels=3, num_res_blocks=1,
                attention_resolutions=(2,), channel_mult=(1, 2), num_heads=-1, num_head_channels=16,
                use_scale_shift_norm=False, resblock_updown=False)
    vcfg = dict(embed_dim=3, n_embed=16, z_channels=3, resolution=32, in_channels=3, out_ch=3, ch=32,
                ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=(8,))
    unet, vq = adm.ADMUNet(**ucfg).eval(), ldm.VQModel(**vcfg).eval()
    prior = ldm.LDMPrior(unet.requires_grad_(False), vq.requires_grad_(False), ucfg, vcfg)
    assert prior.shape == (3, 8, 8) and prior.x_shape == (3, 32, 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        z = prior.encode(x)
        assert z.shape == (2, 3, 8, 8)
        assert prior(z, torch.tensor([0.5, 5.0])).shape == z.shape
        assert prior.decode(z).shape == x.shape
    tab = ldm.ldm_sigmas()
    assert torch.all(tab[1:] > tab[:-1]) and abs(float(tab[0]) - (0.0015 / (1 - 0.0015)) ** 0.5) < 1e-9
    # EMA weights (LitEma names: dots removed) are preferred when all present
    sd = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    ema = {"model_ema." + f"diffusion_model.{k}".replace(".", ""): v + 1 for k, v in unet.state_dict().items()}
    u, _ = ldm.split_state_dict({**sd, **ema})
    k0 = "input_blocks.0.0.weight"
    assert torch.equal(u[k0], unet.state_dict()[k0] + 1)
    u, _ = ldm.split_state_dict(sd)
    assert torch.equal(u[k0], unet.state_dict()[k0])


def test_format_errors_pass_through_build_prior_and_corrupt_files_get_the_advice(tmp_path, monkeypatch):
    """A release pickle without _init_kwargs (the project's old idea of the format) fails saying
    what is missing, not 'download again'; a truncated file keeps the corrupt-file advice."""
    from dipbench import pipeline as P
    from dipbench.checkpoint_format import CheckpointFormatError

    torch.manual_seed(1)
    net = edm_pickle.EDMPrecond(**SMALL_EDM).eval()
    blob = _release_bytes(net)
    good = tmp_path / "good.pkl"
    good.write_bytes(blob)
    rec = edm_pickle.load_release(good)["ema"]
    rec.state["init_kwargs"] = rec.state.pop("_init_kwargs")            # the old, wrong field name
    with pytest.raises(CheckpointFormatError, match=r"expected field _init_kwargs in the persistent-object "
                                                    r"state of EDMPrecond.*got keys .*init_kwargs"):
        edm_pickle.network_from_record(rec)
    rec.state["_init_kwargs"] = dict(SMALL_EDM, fancy_option=3)
    with pytest.raises(CheckpointFormatError, match=r"\['fancy_option'\].*not understood"):
        edm_pickle.network_from_record(rec)
    rec.state["_init_kwargs"] = dict(SMALL_EDM, model_type="SongUNet")
    with pytest.raises(CheckpointFormatError, match="model_type 'SongUNet' is not implemented"):
        edm_pickle.network_from_record(rec)
    rec.state["_init_kwargs"] = dict(SMALL_EDM)
    rec.state["_modules"]["model"].state["_modules"]["map_layer0"].state["_parameters"]["weight"] = torch.zeros(1)
    with pytest.raises(CheckpointFormatError, match=r"model.map_layer0.weight: file \(1,\)"):
        edm_pickle.network_from_record(rec)

    cfg = {"datasets": {"in64": {"images": "imagenet64", "prior": {"name": "edm_imagenet64",
                                                                    "params": {"path": str(good)}}}}}
    monkeypatch.setattr(edm_pickle, "META_FIELDS", edm_pickle.META_FIELDS - {"module_src"})
    with pytest.raises(CheckpointFormatError) as e:                      # an unknown record field
        P.build_prior(cfg, "in64")
    msg = str(e.value)
    assert "not understood: ['module_src']" in msg and str(good) in msg and "corrupt" not in msg
    monkeypatch.undo()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(blob[: len(blob) // 2])                                # a truncated download
    cfg["datasets"]["in64"]["prior"]["params"]["path"] = str(cut)
    with pytest.raises(P.InputError, match="truncated or corrupt"):
        P.build_prior(cfg, "in64")
