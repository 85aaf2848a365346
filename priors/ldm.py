"""CelebA-HQ-256 and FFHQ-256 latent diffusion models (Rombach et al. 2022, CompVis
``celebahq-ldm-vq-4`` / ``ffhq-ldm-vq-4``).

Two parts, state-dict compatible with the CompVis (Lightning) checkpoint's ``state_dict``:
  * ``first_stage_model.*``  - VQ autoencoder, f = 4 (taming-transformers Encoder/Decoder, ch 128,
    ch_mult (1, 2, 4), 2 res blocks, no attention at resolutions, z_channels = embed_dim = 3,
    8192 codes): 256x256x3 images <-> 64x64x3 latents;
  * ``model.diffusion_model.*`` - the ADM-style U-Net of LDM's openaimodel (priors/adm.ADMUNet
    with model_channels 224, channel_mult (1, 2, 3, 4), 2 res blocks, attention at ds 8, 4, 2,
    32 channels per head, no scale-shift norm, convolutional resampling), eps-prediction.
Configuration as published in latent-diffusion's ``configs/latent-diffusion/celebahq-ldm-vq-4.yaml``
(linear_start 0.0015, linear_end 0.0195, T = 1000, LDM's "linear" schedule
beta_t = (linspace(sqrt(0.0015), sqrt(0.0195), T))^2, latent scale factor 1).

The denoiser acts on latents (``shape`` = (3, 64, 64)), wrapped VP -> EDM exactly as priors/adm.py
does, on this schedule; ``encode``/``decode`` map images in [-1, 1] to latents and back (decode
quantises to the nearest code first, as LDM's VQ decode does).  ``x_shape`` = (3, 256, 256).

Loading: ``priors.build("ldm_celebahq256", path=...)`` (or ``ldm_ffhq256``) reads the release's
``model.ckpt``, a PyTorch Lightning checkpoint, with priors/lightning_checkpoint.py (torch.load with
a restricted unpickler: Lightning/OmegaConf objects in the callback and hyper-parameter entries
become inert stand-ins, nothing is executed; ``weights_only=True`` would refuse them).  From its
``state_dict`` (or a flat state dict) every key must be one the loader understands
(``STATE_PREFIXES`` / ``SCHEDULE_BUFFERS`` / ``scale_factor``): the U-Net (EMA weights when
present, as LDM samples with them), the first stage, LitEma's bookkeeping and LatentDiffusion's
registered schedule buffers, which are checked against the configured schedule.  Anything else (a
conditioning model, an unknown key, a differing schedule) fails with CheckpointFormatError naming
it.  tests/fixtures/checkpoints/ldm_small.ckpt is such a checkpoint written by the official
latent-diffusion code and Lightning 1.4.2 (random weights, small configuration), with the
official outputs it is compared against.  diffusers is not used.

FFHQ (``ldm_ffhq256``): latent-diffusion's ``configs/latent-diffusion/ffhq-ldm-vq-4.yaml`` has the
same model section as ``celebahq-ldm-vq-4.yaml`` (same U-Net, VQ-f4 first stage, schedule); only
the data differ, so the same configuration and manifest names apply (priors/manifests/).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dipbench.checkpoint_format import CheckpointFormatError, describe_keys, load_state_dict_checked

from .adm import ADMUNet, VPEpsDenoiser
from .lightning_checkpoint import read_lightning_checkpoint
from .registry import register

UNET_CONFIG = dict(image_size=64, in_channels=3, model_channels=224, out_channels=3, num_res_blocks=2,
                   attention_resolutions=(8, 4, 2), channel_mult=(1, 2, 3, 4), num_heads=-1,
                   num_head_channels=32, use_scale_shift_norm=False, resblock_updown=False)
VQ_CONFIG = dict(embed_dim=3, n_embed=8192, z_channels=3, resolution=256, in_channels=3, out_ch=3,
                 ch=128, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=())
SCHEDULE = dict(linear_start=0.0015, linear_end=0.0195, timesteps=1000)


def ldm_sigmas(linear_start=0.0015, linear_end=0.0195, timesteps=1000) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t)/abar_t) for LDM's 'linear' (sqrt-linear squared) beta schedule."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    ab = torch.cumprod(1 - betas, 0)
    return ((1 - ab) / ab).sqrt()


def _gn(ch):
    return nn.GroupNorm(32, ch, eps=1e-6)


class VQResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = _gn(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _gn(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class VQAttn(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.norm = _gn(ch)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(a)


class _Down(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))      # asymmetric padding, as in taming


class _Up(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution, z_channels, **_):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        mults, res = (1,) + tuple(ch_mult), resolution
        self.down = nn.ModuleList()
        for i, m in enumerate(ch_mult):
            lvl = nn.Module()
            cin, cout = ch * mults[i], ch * m
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                lvl.block.append(VQResBlock(cin, cout))
                cin = cout
                if res in attn_resolutions:
                    lvl.attn.append(VQAttn(cin))
            if i != len(ch_mult) - 1:
                lvl.downsample = _Down(cin)
                res //= 2
            self.down.append(lvl)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = VQResBlock(cin, cin), VQAttn(cin), VQResBlock(cin, cin)
        self.norm_out, self.conv_out = _gn(cin), nn.Conv2d(cin, z_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for j, blk in enumerate(lvl.block):
                h = blk(h)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, out_ch, resolution, z_channels, **_):
        super().__init__()
        cin = ch * ch_mult[-1]
        res = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, cin, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = VQResBlock(cin, cin), VQAttn(cin), VQResBlock(cin, cin)
        ups = []
        for i in reversed(range(len(ch_mult))):
            lvl = nn.Module()
            lvl.block, lvl.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                lvl.block.append(VQResBlock(cin, ch * ch_mult[i]))
                cin = ch * ch_mult[i]
                if res in attn_resolutions:
                    lvl.attn.append(VQAttn(cin))
            if i != 0:
                lvl.upsample = _Up(cin)
                res *= 2
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out, self.conv_out = _gn(cin), nn.Conv2d(cin, out_ch, 3, padding=1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for lvl in reversed(self.up):
            for j, blk in enumerate(lvl.block):
                h = blk(h)
                if len(lvl.attn):
                    h = lvl.attn[j](h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    def __init__(self, n_embed, embed_dim):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def forward(self, z):
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        e = self.embedding.weight
        d = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ e.t() + (e ** 2).sum(1)[None]
        q = e[d.argmin(1)].reshape(b, h, w, c).permute(0, 3, 1, 2)
        return z + (q - z).detach()                  # straight-through: gradients pass to z


class VQModel(nn.Module):
    def __init__(self, embed_dim=3, n_embed=8192, **dd):
        super().__init__()
        self.encoder, self.decoder = Encoder(**dd), Decoder(**dd)
        self.quantize = VectorQuantizer(n_embed, embed_dim)
        self.quant_conv = nn.Conv2d(dd["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, dd["z_channels"], 1)

    def encode(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, z, quantize: bool = True):
        return self.decoder(self.post_quant_conv(self.quantize(z) if quantize else z))


class LDMPrior(VPEpsDenoiser):
    """Latent denoiser D(z, sigma) on (3, 64, 64) latents, with encode/decode to 256x256 images."""

    def __init__(self, unet: ADMUNet, vq: VQModel, unet_cfg=UNET_CONFIG, vq_cfg=VQ_CONFIG,
                 schedule=SCHEDULE):
        r = vq_cfg["resolution"] // 2 ** (len(vq_cfg["ch_mult"]) - 1)
        super().__init__(unet, (vq_cfg["embed_dim"], r, r), eps_channels=unet_cfg["out_channels"],
                         table=ldm_sigmas(**schedule))
        self.vq = vq
        self.x_shape = (vq_cfg["out_ch"], vq_cfg["resolution"], vq_cfg["resolution"])

    scale_factor = 1.0        # LatentDiffusion's latent scale (1 for the VQ-f4 face models)

    def encode(self, x):
        return self.scale_factor * self.vq.encode(x)

    def decode(self, z):
        return self.vq.decode(z / self.scale_factor)

    def to(self, device):
        super().to(device)
        self.vq.to(device)
        return self


# keys of a LatentDiffusion state dict (latent-diffusion@a506df5 ldm/models/diffusion/ddpm.py):
# the U-Net ``model.diffusion_model.*`` (DiffusionWrapper), the first stage ``first_stage_model.*``,
# LitEma ``model_ema.*`` (ldm/modules/ema.py: ``decay``, ``num_updates`` and the U-Net parameter
# names with the dots removed), the schedule buffers registered in DDPM.register_schedule
# (lines 136-156), and ``scale_factor`` / ``logvar`` when registered (lines 112-114, 459).
STATE_PREFIXES = ("model.diffusion_model.", "first_stage_model.", "model_ema.")
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
                    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
                    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2")
OTHER_KEYS = ("scale_factor", "logvar")


def check_state_keys(sd: dict, what: str = "LDM checkpoint") -> None:
    """Fail naming every key that is not part of an unconditional LatentDiffusion state dict."""
    unknown = [k for k in sd if not k.startswith(STATE_PREFIXES) and k not in SCHEDULE_BUFFERS
               and k not in OTHER_KEYS]
    if unknown:
        cond = [k for k in unknown if k.startswith("cond_stage_model.")]
        hint = (" (a conditioning model: this loader reads the unconditional LDMs only)" if cond else "")
        raise CheckpointFormatError(f"{what}: state_dict entries not understood: {unknown[:8]}"
                                    f"{' ...' if len(unknown) > 8 else ''} ({len(unknown)} in all){hint}; "
                                    f"understood: {', '.join(STATE_PREFIXES)}*, the schedule buffers "
                                    f"{', '.join(SCHEDULE_BUFFERS[:2])}, ..., {', '.join(OTHER_KEYS)}")
    if not any(k.startswith("model.diffusion_model.") for k in sd):
        raise CheckpointFormatError(f"{what}: no model.diffusion_model.* entries (the U-Net); got keys "
                                    f"{describe_keys(sd)}")


def check_schedule(sd: dict, schedule: dict, what: str = "LDM checkpoint") -> None:
    """The checkpoint's registered betas must be the configured schedule's."""
    if "betas" not in sd:
        return
    want = ldm_sigmas(**schedule)
    betas = sd["betas"].double()
    ab = torch.cumprod(1 - betas, 0)
    got = ((1 - ab) / ab).sqrt()
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-5):
        raise CheckpointFormatError(f"{what}: the checkpoint's beta schedule ({betas.numel()} steps, "
                                    f"{float(betas[0]):.6g} .. {float(betas[-1]):.6g}) is not the configured "
                                    f"one ({schedule})")


def split_state_dict(sd: dict, use_ema: bool = True) -> tuple[dict, dict]:
    """(U-Net, VQ) state dicts from an LDM checkpoint.  With ``use_ema`` and EMA entries present
    (LDM's LitEma stores ``model_ema.`` + the parameter name with its dots removed), the U-Net
    gets the EMA weights, which is what LDM samples with."""
    sd = sd.get("state_dict", sd)
    unet = {k[len("model.diffusion_model."):]: v for k, v in sd.items() if k.startswith("model.diffusion_model.")}
    vq = {k[len("first_stage_model."):]: v for k, v in sd.items() if k.startswith("first_stage_model.")}
    if use_ema:
        ema = {k: sd.get("model_ema." + ("diffusion_model." + k).replace(".", "")) for k in unet}
        if ema and all(v is not None for v in ema.values()):
            unet = ema
    return unet, vq


def read_state_dict(path) -> dict:
    """The state dict of an LDM checkpoint file (Lightning checkpoint or flat state dict)."""
    obj = read_lightning_checkpoint(path)
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, dict):
        raise CheckpointFormatError(f"LDM checkpoint {path}: 'state_dict' is a {type(sd).__name__}, "
                                    f"expected a dict of tensors")
    return sd


def build_ldm(path=None, unet_cfg=UNET_CONFIG, vq_cfg=VQ_CONFIG, schedule=SCHEDULE, use_ema=True) -> LDMPrior:
    unet, vq = ADMUNet(**unet_cfg), VQModel(**vq_cfg)
    scale = 1.0
    if path is not None:
        sd = read_state_dict(path)
        what = f"LDM checkpoint {Path(path).name}"
        check_state_keys(sd, what)
        check_schedule(sd, schedule, what)
        u, v = split_state_dict(sd, use_ema)
        load_state_dict_checked(unet, u, f"{what} (model.diffusion_model)")
        load_state_dict_checked(vq, v, f"{what} (first_stage_model)")
        if "scale_factor" in sd:
            scale = float(sd["scale_factor"])
    unet.eval().requires_grad_(False)
    vq.eval().requires_grad_(False)
    prior = LDMPrior(unet, vq, unet_cfg, vq_cfg, schedule)
    prior.scale_factor = scale
    return prior


@register("ldm_celebahq256")
def ldm_celebahq256(path: str | None = None):
    """CompVis CelebA-HQ-256 LDM (VQ-f4); ``path``: the checkpoint (model.ckpt from celeba.zip)."""
    if path is None:
        from dipbench.prefetch import require_checkpoint

        path = require_checkpoint("ldm_celebahq256")
    return build_ldm(path)


@register("ldm_ffhq256")
def ldm_ffhq256(path: str | None = None):
    """CompVis FFHQ-256 LDM (VQ-f4, ``ffhq-ldm-vq-4``: the CelebA-HQ model's configuration);
    ``path``: the checkpoint (model.ckpt from ffhq.zip)."""
    if path is None:
        from dipbench.prefetch import require_checkpoint

        path = require_checkpoint("ldm_ffhq256")
    return build_ldm(path)
