"""Consistency models for ImageNet-64 (Song et al. 2023, openai/consistency_models), as a prior
object with the one-step map ``consistency(x, sigma) -> x0_hat``.

Architecture (cm/unet.py, cm/script_util.py; the ImageNet-64 flags of scripts/launch.sh): the
guided-diffusion U-Net (priors/adm.ADMUNet) with ``model_channels=192, channel_mult=(1, 2, 3, 4),
num_res_blocks=3, attention at 32, 16, 8 (ds 2, 4, 8), num_head_channels=64,
use_scale_shift_norm=True, resblock_updown=True``, a class embedding (``label_emb``, 1000 classes)
and the consistency models' own attention block (2-D 1x1 qkv / proj convolutions, qkv channels
laid out [q all heads | k all heads | v all heads]; ``AttentionBlock(layout="cm")``).  The
released files are state dicts (``th.save(model.state_dict())``), read with weights_only=True.

Parameterisation (cm/karras_diffusion.py ``KarrasDenoiser.denoise`` with ``distillation=True``,
which image_sample.py sets for every consistency checkpoint), EDM/VE convention x = x0 + sigma n,
images in [-1, 1], sigma_data = 0.5, sigma_min = 0.002, sigma_max = 80:

    c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2)
    c_out  = (sigma - sigma_min) sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in   = 1 / sqrt(sigma^2 + sigma_data^2),   time input 250 log(sigma + 1e-44)
    f(x, sigma) = c_skip x + c_out F(c_in x, 250 log sigma, y)

so f(x, sigma_min) = x exactly (the boundary condition): ``consistency_sigma_min`` = 0.002.
sigma is clamped to [sigma_min, sigma_max], the range the models were trained on.  The official
sampler additionally clamps f to [-1, 1] (image_sample.py ``clip_denoised`` default True); here
``clip`` defaults to False because a clamp zeroes the gradient of every clamped pixel, and MAP-GA
differentiates through f; ``clip: true`` reproduces the sampler's clamp.

Class label (``class_label``): the network cannot run without one (``label_emb``);
``true`` (default) = each image's ImageNet class, handed over per batch by the pipeline
(``set_labels``, see priors/edm_pickle.LabelledPrior), or an int class for every image.

Checkpoint (``checkpoint``): one of ``CHECKPOINTS`` (entries of priors/checkpoints.yaml).  The
default is ``cd_imagenet64_lpips``: MAP-GA uses "the consistency model from [22] with their
default settings" beside the EDM ImageNet-64 denoiser; the consistency-distillation models were
distilled from that EDM teacher (scripts/launch.sh: ``--teacher_model_path edm_imagenet64_ema.pt``),
and the LPIPS-distilled one is the Consistency Models paper's headline ImageNet-64 model (its
one-step FID 6.20) and the first consistency checkpoint of the release's own sampling examples.
The others: ``cd_imagenet64_l2`` (distilled with the L2 metric), ``ct_imagenet64`` (consistency
training, no teacher).

The prior is also callable as a denoiser, D(x, sigma) := f(x, sigma) (the one-step estimate of
x0, not the posterior mean E[x0 | x]).
"""
from __future__ import annotations

from pathlib import Path

import torch

from dipbench.checkpoint_format import CheckpointFormatError, load_state_dict_checked, read_checkpoint

from .adm import ADMUNet
from .base import Denoiser, sigma_column
from .edm_pickle import LabelledPrior, parse_class_label
from .registry import register

# cm/script_util.py create_model with the ImageNet-64 flags of scripts/launch.sh
CONFIG_IMAGENET64 = dict(image_size=64, in_channels=3, model_channels=192, out_channels=3,
                         num_res_blocks=3, attention_resolutions=(2, 4, 8), channel_mult=(1, 2, 3, 4),
                         num_heads=4, num_head_channels=64, use_scale_shift_norm=True,
                         resblock_updown=True, num_classes=1000, attention_layout="cm")
CHECKPOINTS = ("cd_imagenet64_lpips", "cd_imagenet64_l2", "ct_imagenet64")
DEFAULT_CHECKPOINT = "cd_imagenet64_lpips"
SIGMA_DATA, SIGMA_MIN, SIGMA_MAX = 0.5, 0.002, 80.0


class ConsistencyPrior(LabelledPrior, Denoiser):
    """f(x, sigma) of a class-conditional consistency model (EDM/VE convention, [-1, 1] images)."""

    def __init__(self, net: ADMUNet, shape, class_label=True, sigma_data=SIGMA_DATA,
                 sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, clip: bool = False):
        self.net = net
        self.shape = tuple(shape)
        self.class_label = parse_class_label(class_label)
        self.num_classes = int(net.num_classes or 0)
        if self.num_classes and self.class_label is None:
            raise ValueError("cm: the consistency model is class-conditional (label_emb) and cannot run "
                             "without a label; class_label must be true (each image's class) or an int")
        self.sigma_data = float(sigma_data)
        self.sigma_min = self.consistency_sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.clip = bool(clip)

    def scalings(self, s: torch.Tensor):
        sd, smin = self.sigma_data, self.sigma_min
        c_skip = sd ** 2 / ((s - smin) ** 2 + sd ** 2)
        c_out = (s - smin) * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        return c_skip, c_out, c_in

    def consistency(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """x0_hat = f(x, sigma), the model's one-step map to the start of the PF-ODE trajectory."""
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"cm: input must be (B, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        s = sigma_column(sigma, x).reshape(-1).clamp(self.sigma_min, self.sigma_max)
        c_skip, c_out, c_in = (c.reshape(-1, 1, 1, 1) for c in self.scalings(s))
        t = 1000 * 0.25 * torch.log(s + 1e-44)
        y = self.class_indices(x) if self.num_classes else None
        out = c_skip * x + c_out * self.net(c_in * x, t, y).to(x.dtype)
        return out.clamp(-1, 1) if self.clip else out

    def denoise(self, x, sigma):
        return self.consistency(x, sigma)


def build_consistency(path=None, config=CONFIG_IMAGENET64, class_label=True, clip=False,
                      what: str = "consistency model") -> ConsistencyPrior:
    net = ADMUNet(**config)
    if path is not None:
        state = read_checkpoint(torch.load, Path(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise CheckpointFormatError(f"{what} {Path(path).name}: expected a state dict "
                                        f"(th.save(model.state_dict())); got {type(state).__name__}")
        load_state_dict_checked(net, state, f"{what} {Path(path).name}")
    net.eval().requires_grad_(False)
    size = config["image_size"]
    return ConsistencyPrior(net, (config["in_channels"], size, size), class_label, clip=clip)


@register("cm_imagenet64")
def cm_imagenet64(checkpoint: str = DEFAULT_CHECKPOINT, path: str | None = None, class_label=True,
                  clip: bool = False):
    """A class-conditional ImageNet-64 consistency model of the Consistency Models release.

    ``checkpoint``: cd_imagenet64_lpips (default, see the module docstring), cd_imagenet64_l2 or
    ct_imagenet64; ``path`` overrides the file; ``class_label``: true or an int; ``clip``: clamp
    f to [-1, 1] as the official sampler does."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"cm_imagenet64: unknown checkpoint {checkpoint!r}; one of {', '.join(CHECKPOINTS)}")
    if path is None:
        from dipbench.prefetch import require_checkpoint

        path = require_checkpoint(checkpoint)
    return build_consistency(path, CONFIG_IMAGENET64, class_label, clip, f"consistency model ({checkpoint})")
