"""A small EDM-preconditioned U-Net prior trained on the embedded skimage32 train split.

Network: an ADM-style U-Net (GroupNorm + SiLU residual blocks with scale/shift conditioning on
the noise level, self-attention at the coarsest resolution, skip connections by concatenation).

Preconditioning (Karras et al. 2022, "Elucidating the design space...", Table 1, "EDM" column),
with sigma_data = 0.5::

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma))
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out  = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in   = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4

Training loss: lambda(sigma) ||D(y + sigma n, sigma) - y||^2 with
lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 and ln(sigma) ~ N(P_mean, P_std^2),
P_mean = -1.2, P_std = 1.2 (see priors/train_edm.py).

Registered prior ``edm_unet``: ``priors.build("edm_unet", weights=None)`` loads the committed
weights ``priors/weights/edm_unet_skimage32.pt`` (float32 state dict, loaded with
``torch.load(weights_only=True)``), checks it against ``edm_unet_skimage32.sha256``, and reads the
architecture from ``edm_unet_skimage32.train.yaml`` (``model:`` section) when present.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Denoiser, sigma_column
from .registry import register

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "edm_unet_skimage32.pt"
DEFAULT_MODEL = dict(in_channels=3, channels=32, channel_mult=(1, 2, 2), num_blocks=2,
                     attn_resolutions=(8,), resolution=32, num_heads=4, emb_freqs=32,
                     groups=8)
SIGMA_DATA = 0.5


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------
def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class NoiseEmbedding(nn.Module):
    """c_noise (B,) -> (B, dim): sin/cos features at fixed log-spaced frequencies, then an MLP."""

    def __init__(self, freqs: int, dim: int):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(100.0), freqs)),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * freqs, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        a = c_noise.reshape(-1, 1) * self.freqs.to(c_noise.dtype)
        return self.mlp(torch.cat([torch.sin(a), torch.cos(a)], dim=1))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return (self.skip(x) + h) / math.sqrt(2.0)


class Attention(nn.Module):
    def __init__(self, ch: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x, emb=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                             v.transpose(-1, -2))           # (b, heads, hw, d)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return (x + self.proj(out)) / math.sqrt(2.0)


class UNet(nn.Module):
    """F(x_in, c_noise) -> (B, C, H, W); ADM-like layout (N res blocks per level, N+1 on the way up)."""

    def __init__(self, in_channels=3, channels=64, channel_mult=(1, 2, 2), num_blocks=2,
                 attn_resolutions=(8,), resolution=32, num_heads=4, emb_freqs=32, groups=16):
        super().__init__()
        emb = 4 * channels
        self.embed = NoiseEmbedding(emb_freqs, emb)
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [channels]
        ch, res = channels, resolution
        for level, m in enumerate(channel_mult):
            for _ in range(num_blocks):
                blocks = nn.ModuleList([ResBlock(ch, channels * m, emb, groups)])
                ch = channels * m
                if res in attn_resolutions:
                    blocks.append(Attention(ch, num_heads, groups))
                self.down.append(blocks)
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb, groups), Attention(ch, num_heads, groups),
                                  ResBlock(ch, ch, emb, groups)])
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(channel_mult))):
            for i in range(num_blocks + 1):
                blocks = nn.ModuleList([ResBlock(ch + skips.pop(), channels * m, emb, groups)])
                ch = channels * m
                if res in attn_resolutions:
                    blocks.append(Attention(ch, num_heads, groups))
                if level > 0 and i == num_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(ch, ch, 3, padding=1))
                    res *= 2
                self.up.append(blocks)
        self.norm_out = nn.GroupNorm(groups, ch)
        self.conv_out = _zero(nn.Conv2d(ch, in_channels, 3, padding=1))

    @staticmethod
    def _run(blocks, h, emb):
        for layer in blocks:
            h = layer(h, emb) if isinstance(layer, (ResBlock, Attention)) else layer(h)
        return h

    def forward(self, x, c_noise):
        emb = self.embed(c_noise)
        h = self.conv_in(x)
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


class EDMPrecond(nn.Module):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) (Karras et al. 2022)."""

    def __init__(self, sigma_data: float = SIGMA_DATA, **model):
        super().__init__()
        self.sigma_data = float(sigma_data)
        self.model = UNet(**model)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = sigma_column(sigma, x).reshape(-1, 1, 1, 1)
        sd2 = self.sigma_data ** 2
        c_skip = sd2 / (s ** 2 + sd2)
        c_out = s * self.sigma_data / (s ** 2 + sd2).sqrt()
        c_in = 1.0 / (s ** 2 + sd2).sqrt()
        c_noise = s.log().reshape(-1) / 4
        return c_skip * x + c_out * self.model(c_in * x, c_noise).to(x.dtype)


def edm_loss(net: EDMPrecond, y: torch.Tensor, generator=None, p_mean: float = -1.2,
             p_std: float = 1.2) -> torch.Tensor:
    """EDM training loss: lambda(sigma) ||D(y + sigma n, sigma) - y||^2, ln sigma ~ N(p_mean, p_std^2)."""
    b = y.shape[0]
    dev = generator.device if generator is not None else y.device   # draw where the generator lives
    rnd = torch.randn(b, generator=generator, device=dev, dtype=y.dtype).to(y.device)
    sigma = (rnd * p_std + p_mean).exp()
    sd = net.sigma_data
    weight = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    n = torch.randn(y.shape, generator=generator, device=dev, dtype=y.dtype).to(y.device)
    d = net(y + sigma.reshape(-1, 1, 1, 1) * n, sigma)
    return (weight.reshape(-1, 1, 1, 1) * (d - y) ** 2).mean()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------
# loading the committed weights
# --------------------------------------------------------------------------------------------
def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name[: -len(path.suffix)] + suffix if path.suffix else path.name + suffix)


def read_expected_sha256(path: Path) -> str | None:
    side = _sidecar(path, ".sha256")
    if not side.exists():
        return None
    return side.read_text().split()[0].strip().lower()


def model_config(path: Path) -> dict:
    """Architecture of a weights file: the ``model:`` section of ``<stem>.train.yaml``, else defaults."""
    cfg = dict(DEFAULT_MODEL)
    side = _sidecar(path, ".train.yaml")
    if side.exists():
        import yaml

        with open(side) as f:
            doc = yaml.safe_load(f) or {}
        cfg.update(doc.get("model", {}) or {})
    for k in ("channel_mult", "attn_resolutions"):
        cfg[k] = tuple(cfg[k])
    return cfg


def load_network(weights=None, verify: bool = True, map_location="cpu") -> EDMPrecond:
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    fix = ("restore it from the repository (`git checkout -- priors/weights/`) or retrain it with "
           "`python -m priors.train_edm --config priors/weights/edm_unet_skimage32.train.yaml "
           f"--out {path}` (or `snakemake train_prior --cores 2`), which rewrites the .sha256")
    if not path.exists():
        raise FileNotFoundError(f"edm_unet: weights file {path} not found; {fix}")
    if verify:
        expected = read_expected_sha256(path)
        if expected is None:
            raise FileNotFoundError(f"edm_unet: checksum file {_sidecar(path, '.sha256')} for {path} "
                                    f"is missing; {fix}")
        got = sha256_file(path)
        if got != expected:
            raise ValueError(f"edm_unet: sha256 of {path} is {got}, expected {expected} "
                             f"(from {_sidecar(path, '.sha256')}); the file is corrupt or was "
                             f"replaced: {fix}")
    net = EDMPrecond(**model_config(path))
    state = torch.load(path, map_location=map_location, weights_only=True)
    net.load_state_dict(state)
    return net.eval().requires_grad_(False)


class EDMUNetPrior(Denoiser):
    """The trained U-Net as a Denoiser D(x, sigma) on (3, 32, 32) images in [-1, 1]."""
    shape = (3, 32, 32)
    sigma_min = 0.002
    sigma_max = 80.0

    def __init__(self, net: EDMPrecond):
        self.net = net

    def denoise(self, x, sigma):
        return self.net(x, sigma)


@register("edm_unet")
def edm_unet(weights: str | None = None, verify: bool = True):
    return EDMUNetPrior(load_network(weights, verify=verify))
