"""Non-uniform (nonlinear) deblurring: the blur-kernel-space forward model of Tran et al. (2021),
as DPS and MGPS "emulate" it, with its released network weights.  Forward only.

The network is bkse's ``KernelWizard`` (VinAIResearch/blur-kernel-space-exploring@f2fe73e,
``models/kernel_encoding/kernel_wizard.py``), re-implemented here with the same module names so
that the released state dict ``GOPRO_wVAE.pth`` (bkse's ``save_network``:
``torch.save(network.state_dict())``) loads strictly.  Only its ``adaptKernel(x, k)`` path is a
forward model: a feature extractor (3x3 convolutions, two of stride 2, ``front_RBs`` residual
blocks), a 5-level U-Net "kernel adapter" whose innermost level concatenates the kernel code k
(8 nf channels at H/128 x W/128), a reconstruction trunk (``back_RBs`` residual blocks, two
pixel-shuffle x2 upsamplings), and a global skip (+ x).  The unused blur-kernel extractor
(``kernel_extractor``: the network's encoder of (sharp, blurred) pairs) is built too, so the
release file loads with every key accounted for.

Configuration (``CONFIG``, bkse ``options/generate_blur/default.yml``, the file DPS and DAPS read):
nf 64, front_RBs 10, back_RBs 20, kernel_dim 512, use_vae true, extractor with no norm, 4 reflect-
padded ResNet blocks, use_sharp; adapter with no norm.

Ranges (DPS@effbde7 guided_diffusion/measurements.py ``NonlinearBlurOperator.forward``, lines
195-200; DAPS@098df6b forward_operator/__init__.py ``NonlinearBlur.__call__``, lines 354-359): x in [-1, 1] is
mapped to [0, 1], blurred by ``adaptKernel``, mapped back with 2 b - 1 and clamped to [-1, 1].

The kernel code.  DPS (and MGPS's copy) draw ``torch.randn(1, 512, 2, 2) * 1.2`` from the global
RNG at every forward call, so the measurement and every guidance step see different blurs; DAPS
draws one code in the operator's constructor (NumPy seed 0, lines 325-328) and uses it for every call and every
image of the batch.  This operator follows DAPS: one code per operator, ``kernel_scale *
N(0, I)`` of shape (1, 8 nf, H/128, W/128) drawn from a private ``torch.Generator`` seeded with the
operator's ``seed`` (the harness derives it from (dataset, task, seed)), shared by the batch, so
the measurement step and the solver build the same forward model.  (2 x 2 at 256 px, as DPS.)
H and W must be multiples of 128.

Weights: ``GOPRO_wVAE.pth`` (priors/checkpoints.yaml entry ``bkse_gopro_wvae``; published on
Google Drive only, so prefetch names the page and the place to put it).  The operator never
downloads; a missing file fails naming the file and the prefetch command.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from dipbench.checkpoint_format import CheckpointFormatError, load_state_dict_checked, read_checkpoint

from .base import Operator, OperatorShapeError
from .registry import register

CONFIG = dict(input_nc=3, nf=64, front_RBs=10, back_RBs=20, kernel_dim=512, use_vae=True,
              extractor_blocks=4)
CHECKPOINT = "bkse_gopro_wvae"


class ResidualBlockNoBN(nn.Module):
    """x + conv2(relu(conv1(x))), 3x3 convolutions with bias (bkse ResidualBlock_noBN)."""

    def __init__(self, nf):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class ReflectResnetBlock(nn.Module):
    """x + [reflect pad, conv (no bias), relu, reflect pad, conv (no bias)]; no norm layers (their
    Identity placeholders keep the release's Sequential indices: convs at 1 and 5)."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False),
                                        nn.Identity(), nn.ReLU(True), nn.ReflectionPad2d(1),
                                        nn.Conv2d(dim, dim, 3, bias=False), nn.Identity())

    def forward(self, x):
        return x + self.conv_block(x)


class KernelExtractor(nn.Module):
    """The blur-kernel encoder (unused by the forward model; present for the state dict)."""

    def __init__(self, nf, kernel_dim, use_vae=True, n_blocks=4):
        super().__init__()
        out_nc = kernel_dim * 2 if use_vae else kernel_dim
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(2 * nf, nf, 7, bias=False), nn.Identity(), nn.ReLU(True)]
        for i in range(5):
            m = 2 ** i
            layers += [nn.Conv2d(min(nf * m, out_nc), min(nf * m * 2, out_nc), 3, 2, 1, bias=False),
                       nn.Identity(), nn.ReLU(True)]
        layers += [ReflectResnetBlock(out_nc) for _ in range(n_blocks)]
        self.model = nn.Sequential(*layers)


class SkipBlock(nn.Module):
    """One level of the kernel adapter's U-Net (bkse UnetSkipConnectionBlock with no norm)."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False):
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        down_conv = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, 2, 1, bias=False)
        if outermost:
            self.down = nn.Sequential(down_conv)
            self.up = nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh())
        else:
            self.down = nn.Sequential(nn.LeakyReLU(0.2, True), down_conv,
                                      *([] if innermost else [nn.Identity()]))
            self.up = nn.Sequential(nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False),
                                    nn.Identity())
        if not innermost:
            self.submodule = submodule

    def forward(self, x, k):
        if self.outermost:
            return self.up(self.submodule(self.down(x), k))
        if self.innermost:
            return torch.cat((self.up(torch.cat((self.down(x), k), dim=1)), x), dim=1)
        return torch.cat((self.up(self.submodule(self.down(x), k)), x), dim=1)


class KernelAdapter(nn.Module):
    def __init__(self, nf):
        super().__init__()
        b = SkipBlock(nf * 8, nf * 8, innermost=True)
        b = SkipBlock(nf * 4, nf * 8, submodule=b)
        b = SkipBlock(nf * 2, nf * 4, submodule=b)
        b = SkipBlock(nf, nf * 2, submodule=b)
        self.model = SkipBlock(nf, nf, input_nc=nf, submodule=b, outermost=True)

    def forward(self, x, k):
        return self.model(x, k)


class KernelWizard(nn.Module):
    def __init__(self, input_nc=3, nf=64, front_RBs=10, back_RBs=20, kernel_dim=512, use_vae=True,
                 extractor_blocks=4):
        super().__init__()
        self.nf = nf
        lrelu = nn.LeakyReLU(negative_slope=0.1)
        self.feature_extractor = nn.Sequential(
            nn.Conv2d(input_nc, nf, 3, 1, 1), lrelu, nn.Conv2d(nf, nf, 3, 2, 1), lrelu,
            nn.Conv2d(nf, nf, 3, 2, 1), lrelu, *[ResidualBlockNoBN(nf) for _ in range(front_RBs)])
        self.kernel_extractor = KernelExtractor(nf, kernel_dim, use_vae, extractor_blocks)
        self.adapter = KernelAdapter(nf)
        self.recon_trunk = nn.Sequential(
            *[ResidualBlockNoBN(nf) for _ in range(back_RBs)],
            nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu,
            nn.Conv2d(nf, 64 * 4, 3, 1, 1), nn.PixelShuffle(2), lrelu,
            nn.Conv2d(64, 64, 3, 1, 1), lrelu, nn.Conv2d(64, input_nc, 3, 1, 1))

    def adapt_kernel(self, x01, k):
        """bkse adaptKernel: x in [0, 1], k (B, 8 nf, H/128, W/128) -> blurred image (~[0, 1])."""
        return self.recon_trunk(self.adapter(self.feature_extractor(x01), k)) + x01


def load_kernel_wizard(path, config=CONFIG) -> KernelWizard:
    net = KernelWizard(**config)
    state = read_checkpoint(torch.load, Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointFormatError(f"bkse checkpoint {Path(path).name}: expected a state dict "
                                    f"(torch.save(network.state_dict())); got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):      # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    load_state_dict_checked(net, state, f"bkse checkpoint {Path(path).name}")
    return net.eval().requires_grad_(False)


def kernel_code(shape, nf: int, seed: int, scale: float = 1.2) -> torch.Tensor:
    """The operator's fixed kernel code: scale * N(0, I) of shape (1, 8 nf, H/128, W/128)."""
    _, h, w = shape
    g = torch.Generator().manual_seed(int(seed))
    return scale * torch.randn(1, 8 * nf, h // 128, w // 128, generator=g)


class NonlinearBlur(Operator):
    """y = clamp(2 KernelWizard.adaptKernel((x + 1) / 2, k) - 1, -1, 1), one fixed code k.

    ``net`` is a KernelWizard or a zero-argument loader returning one: the weights are read at the
    first forward pass, so a config can be validated (and a grid planned) before they are fetched;
    the first forward then fails naming the file and the prefetch command."""
    provides = frozenset({"forward"})

    def __init__(self, shape, net, seed: int = 0, kernel_scale: float = 1.2, nf: int | None = None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or shape[1] % 128 or shape[2] % 128:
            raise OperatorShapeError(f"deblur_nonlinear: images must be (C, H, W) with H and W multiples "
                                     f"of 128 (the kernel code lives at H/128 x W/128); got {shape}")
        super().__init__(shape, shape)
        self._net, self._device = net, None
        nf = net.nf if isinstance(net, nn.Module) else int(nf)
        self.kernel = kernel_code(shape, nf, seed, kernel_scale)

    @property
    def net(self) -> KernelWizard:
        if not isinstance(self._net, nn.Module):
            self._net = self._net()
            if self._device is not None:
                self._net.to(self._device)
        return self._net

    def forward(self, x):
        k = self.kernel.to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1, -1)
        b = self.net.adapt_kernel((x + 1) / 2, k)
        return (b * 2 - 1).clamp(-1, 1)

    def to(self, device):
        super().to(device)
        self._device = device
        if isinstance(self._net, nn.Module):
            self._net.to(device)
        return self


@register("deblur_nonlinear")
def deblur_nonlinear(shape, seed: int = 0, path: str | None = None, kernel_scale: float = 1.2, **arch):
    """Non-uniform blur of Tran et al. (2021) with bkse's GOPRO_wVAE.pth weights; forward only.
    ``arch`` overrides entries of CONFIG (for other KernelWizard files, e.g. the test fixture)."""
    unknown = set(arch) - set(CONFIG)
    if unknown:
        raise TypeError(f"deblur_nonlinear: unknown parameter(s) {sorted(unknown)}; architecture "
                        f"entries are {', '.join(CONFIG)}")
    config = dict(CONFIG, **arch)

    def load():
        p = path
        if p is None:
            from dipbench.prefetch import require_checkpoint

            p = require_checkpoint(CHECKPOINT)
        return load_kernel_wizard(p, config)

    return NonlinearBlur(shape, load, seed, kernel_scale, nf=config["nf"])
