"""ADM / guided-diffusion U-Net (Dhariwal & Nichol 2021), state-dict compatible with the released
checkpoints, wrapped into the EDM/VE denoiser convention.

Checkpoints (see priors/checkpoints.yaml; fetched by ``python -m dipbench.prefetch``):
  * ``adm_ffhq256``      - DPS's FFHQ-256 model ``ffhq_10m.pt`` (Chung et al. 2023),
  * ``adm_imagenet256``  - guided-diffusion's ``256x256_diffusion_uncond.pt``.
Both predict epsilon and a learned variance (6 output channels); the variance channels are
dropped.  Architecture hyper-parameters are those published with the checkpoints (``CONFIGS``).

Parameter naming follows the released state dicts: ``time_embed.{0,2}``, ``input_blocks.i.j``,
``middle_block.{0,1,2}``, ``output_blocks.i.j``, ``out.{0,2}``; residual blocks hold
``in_layers.{0,2}``, ``emb_layers.1``, ``out_layers.{0,3}``, ``skip_connection``; attention blocks
hold ``norm``, ``qkv`` and ``proj_out`` (1-D convolutions over flattened pixels).

VP -> EDM wrapping: the VP network models x_vp = sqrt(abar_t) x0 + sqrt(1-abar_t) n.
For VE x = x0 + sigma n, x / sqrt(1 + sigma^2) is such a sample at the (fractional) timestep t with
abar_t = 1 / (1 + sigma^2), on the linear beta schedule 1e-4 .. 0.02, T = 1000; then
D(x, sigma) = x - sigma eps_hat(x / sqrt(1 + sigma^2), t).  t is found by interpolating
log sigma_t = 0.5 log((1 - abar_t) / abar_t) between integer steps (the network's sinusoidal
time embedding accepts fractional t), and sigma is clipped to [sigma_0, sigma_999] ~ [0.01, 157].
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dipbench.checkpoint_format import CheckpointFormatError, load_state_dict_checked, read_checkpoint

from .base import Denoiser, sigma_column
from .registry import register

CONFIGS = {
    # DPS (Chung et al. 2023) configs/model_config.yaml for ffhq_10m.pt
    "ffhq256": dict(image_size=256, in_channels=3, model_channels=128, out_channels=6,
                    num_res_blocks=1, attention_resolutions=(16,), channel_mult=(1, 1, 2, 2, 4, 4),
                    num_heads=4, num_head_channels=64, use_scale_shift_norm=True,
                    resblock_updown=True),
    # guided-diffusion README flags for 256x256_diffusion_uncond.pt
    "imagenet256": dict(image_size=256, in_channels=3, model_channels=256, out_channels=6,
                        num_res_blocks=2, attention_resolutions=(32, 16, 8),
                        channel_mult=(1, 1, 2, 2, 4, 4), num_heads=4, num_head_channels=64,
                        use_scale_shift_norm=True, resblock_updown=True),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos(t w_k), sin(t w_k)] with w_k = max_period^(-k / (dim/2)), k = 0 .. dim/2 - 1."""
    half = dim // 2
    w = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * w[None]
    emb = torch.cat([torch.cos(a), torch.sin(a)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.float()).to(x.dtype)


def _norm(ch: int) -> nn.GroupNorm:
    return GroupNorm32(32, ch)


class _Resample(nn.Module):
    """Parameter-free 2x nearest upsampling or 2x2 average pooling."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else F.avg_pool2d(x, 2)


class Downsample(nn.Module):
    """Strided 3x3 convolution (``op``) or average pooling."""

    def __init__(self, ch: int, use_conv: bool = True):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x) if self.use_conv else F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Nearest 2x upsampling then a 3x3 convolution (``conv``)."""

    def __init__(self, ch: int, use_conv: bool = True):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class ResBlock(nn.Module):
    def __init__(self, ch: int, emb_ch: int, out_ch: int | None = None, scale_shift: bool = True,
                 up: bool = False, down: bool = False):
        super().__init__()
        out_ch = out_ch or ch
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.resample = _Resample(up) if (up or down) else None
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(_norm(out_ch), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x, emb):
        if self.resample is not None:      # norm + act, resample, conv (resampling both paths)
            h = self.in_layers[1](self.in_layers[0](x))
            h = self.in_layers[2](self.resample(h))
            x = self.resample(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            for layer in self.out_layers[1:]:
                h = layer(h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over pixels.

    ``layout="legacy"`` (guided-diffusion, LDM): 1-D 1x1 convolutions over the flattened pixels;
    per head the qkv channels are [q_h, k_h, v_h].  ``layout="cm"`` (consistency_models'
    AttentionBlock with its default ``attention_type="flash"``, cm/unet.py): 2-D 1x1
    convolutions (weights (C, C, 1, 1)); the qkv channels are [q of all heads, k of all heads,
    v of all heads] (``"b (three h d) s"``); attention is the same exact softmax(q k^T/sqrt(d)) v."""

    def __init__(self, ch: int, num_heads: int = 1, num_head_channels: int = -1, layout: str = "legacy"):
        super().__init__()
        if layout not in ("legacy", "cm"):
            raise ValueError(f"attention layout {layout!r}: 'legacy' or 'cm'")
        self.layout = layout
        self.heads = num_heads if num_head_channels == -1 else ch // num_head_channels
        self.norm = _norm(ch)
        conv = nn.Conv1d if layout == "legacy" else nn.Conv2d
        self.qkv = conv(ch, 3 * ch, 1)
        self.proj_out = conv(ch, ch, 1)

    def forward(self, x, emb=None):
        b, c, *sp = x.shape
        d = c // self.heads
        if self.layout == "legacy":
            xf = x.reshape(b, c, -1)
            qkv = self.qkv(self.norm(xf))
            q, k, v = qkv.reshape(b * self.heads, 3 * d, -1).split(d, dim=1)   # (bH, d, T)
        else:
            xf = x
            qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, d, -1)     # (b, three, h, d, T)
            q, k, v = (t.reshape(b * self.heads, d, -1) for t in qkv.unbind(1))
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        h = self.proj_out(a.transpose(1, 2).reshape(b, c, *([-1] if self.layout == "legacy" else sp)))
        return (xf + h).reshape(b, c, *sp)


class _Seq(nn.ModuleList):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, (ResBlock, AttentionBlock)) else layer(x)
        return x


class ADMUNet(nn.Module):
    """The ADM U-Net; forward(x, t[, y]) -> (B, out_channels, H, W).  ``num_classes``: a class
    embedding ``label_emb`` (nn.Embedding) added to the time embedding, and ``y`` (B,) class
    indices required; ``attention_layout``: see AttentionBlock."""

    def __init__(self, image_size=256, in_channels=3, model_channels=128, out_channels=6,
                 num_res_blocks=1, attention_resolutions=(16,), channel_mult=(1, 1, 2, 2, 4, 4),
                 num_heads=4, num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True,
                 conv_resample=True, num_classes=None, attention_layout="legacy"):
        super().__init__()
        self.model_channels = model_channels
        self.num_classes = num_classes
        emb_ch = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_ch), nn.SiLU(),
                                        nn.Linear(emb_ch, emb_ch))
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb_ch)
        lay = attention_layout
        ss = use_scale_shift_norm
        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([_Seq([nn.Conv2d(in_channels, ch, 3, padding=1)])])
        chans, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, emb_ch, int(mult * model_channels), ss)]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads, num_head_channels, lay))
                self.input_blocks.append(_Seq(layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(_Seq([ResBlock(ch, emb_ch, ch, ss, down=True) if resblock_updown
                                               else Downsample(ch, conv_resample)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = _Seq([ResBlock(ch, emb_ch, ch, ss),
                                  AttentionBlock(ch, num_heads, num_head_channels, lay),
                                  ResBlock(ch, emb_ch, ch, ss)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb_ch, int(model_channels * mult), ss)]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(AttentionBlock(ch, num_heads, num_head_channels, lay))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, emb_ch, ch, ss, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(_Seq(layers))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))

    def forward(self, x, t, y=None):
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        if (y is None) != (self.num_classes is None):
            raise ValueError("ADMUNet: class labels y are required exactly when the net is class-conditional")
        if y is not None:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


# --------------------------------------------------------------------------------------------
# VP -> EDM wrapping
# --------------------------------------------------------------------------------------------
def vp_sigmas(t_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t) at integer t = 0 .. T-1 (float64, increasing)."""
    betas = torch.linspace(beta_start, beta_end, t_steps, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    return ((1 - ab) / ab).sqrt()


def sigma_to_t(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Fractional timestep whose sigma equals ``sigma`` (log-linear interpolation in the table)."""
    ls = table.log()
    s = sigma.double().clamp(float(table[0]), float(table[-1])).log()
    i = torch.searchsorted(ls, s).clamp(1, len(ls) - 1)
    lo, hi = ls[i - 1], ls[i]
    return (i - 1).double() + (s - lo) / (hi - lo)


class VPEpsDenoiser(Denoiser):
    """Wrap an epsilon-predicting VP network net(x_vp, t) into D(x, sigma) (EDM/VE convention)."""

    def __init__(self, net: nn.Module, shape, eps_channels: int = 3, t_steps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 0.02, table: torch.Tensor | None = None):
        self.net = net
        self.shape = tuple(shape)
        self.eps_channels = eps_channels
        self.table = vp_sigmas(t_steps, beta_start, beta_end) if table is None else table.double()
        self.sigma_min = float(self.table[0])
        self.sigma_max = float(self.table[-1])

    def denoise(self, x, sigma):
        s = sigma_column(sigma, x).reshape(-1).clamp(self.sigma_min, self.sigma_max)
        t = sigma_to_t(s.detach().cpu(), self.table).to(device=x.device, dtype=torch.float32)
        sc = s.reshape(-1, 1, 1, 1)
        eps = self.net(x / (1 + sc ** 2).sqrt(), t)[:, : self.eps_channels].to(x.dtype)
        return x - sc * eps

    def to(self, device):
        self.net.to(device)
        return self


def build_adm(config: str, path=None, **overrides) -> VPEpsDenoiser:
    cfg = dict(CONFIGS[config])
    cfg.update(overrides)
    net = ADMUNet(**cfg)
    if path is not None:
        state = read_checkpoint(torch.load, Path(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise CheckpointFormatError(f"ADM checkpoint {Path(path).name}: expected a state dict "
                                        f"(torch.save(model.state_dict())); got {type(state).__name__}")
        load_state_dict_checked(net, state, f"ADM checkpoint {Path(path).name}")
    net.eval().requires_grad_(False)
    return VPEpsDenoiser(net, (cfg["in_channels"], cfg["image_size"], cfg["image_size"]))


def _checkpoint_path(name: str, path):
    if path is not None:
        return Path(path)
    from dipbench.prefetch import require_checkpoint

    return require_checkpoint(name)


@register("adm_ffhq256")
def adm_ffhq256(path: str | None = None):
    """DPS's FFHQ-256 ADM (``ffhq_10m.pt``), as D(x, sigma) on (3, 256, 256)."""
    return build_adm("ffhq256", _checkpoint_path("adm_ffhq256", path))


@register("adm_imagenet256")
def adm_imagenet256(path: str | None = None):
    """guided-diffusion's unconditional ImageNet-256 ADM, as D(x, sigma) on (3, 256, 256)."""
    return build_adm("imagenet256", _checkpoint_path("adm_imagenet256", path))
