"""Where the perceptual metrics' backbone weights live, and how to tell whether they are there.

Nothing here touches the network.  The metrics check these files *before* constructing a network
(torchvision would otherwise try to download a missing checkpoint and hang offline), and
``metrics.prefetch`` downloads them, on a machine with internet access, into the same places:

* LPIPS (``lpips`` package): the linear heads ship inside the wheel (``lpips/weights/v0.1/*.pth``);
  the backbones are torchvision's ImageNet checkpoints, read from torch.hub's cache
  ``$TORCH_HOME/hub/checkpoints/<file name of the torchvision weights URL>``
  (``TORCH_HOME`` defaults to ``~/.cache/torch``).
* FID (``clean-fid``): the Inception-v3 TorchScript file ``inception-2015-12-05.pt``.  clean-fid
  itself keeps it in ``/tmp``, which does not survive a reboot or a move to a cluster node, so it
  is looked up in ``$DIPBENCH_CLEANFID_DIR`` when that is set (and only there), else in
  ``$TORCH_HOME/cleanfid`` and then clean-fid's own ``/tmp``.  The folder found is handed to
  clean-fid's ``InceptionV3W`` with downloading switched off.
"""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

PREFETCH_CMD = "snakemake --cores 1 prefetch_metrics  (or: python -m metrics.prefetch)"

INCEPTION_FILE = "inception-2015-12-05.pt"

# torchvision architecture used by each LPIPS net, and the weights enum holding its URL
LPIPS_BACKBONES = {"alex": ("alexnet", "AlexNet_Weights"), "vgg": ("vgg16", "VGG16_Weights"),
                   "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights")}


def torch_home() -> Path:
    env = os.environ.get("TORCH_HOME")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "torch"


def hub_checkpoints() -> Path:
    """torch.hub's checkpoint cache (where torchvision's ``weights.get_state_dict`` reads)."""
    return torch_home() / "hub" / "checkpoints"


def backbone_url(net: str) -> str:
    import torchvision.models as tvm

    _, enum = LPIPS_BACKBONES[net]
    return getattr(tvm, enum).IMAGENET1K_V1.url


def backbone_file(net: str) -> Path:
    return hub_checkpoints() / os.path.basename(backbone_url(net))


def lpips_head_file(net: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.origin:
        return Path("<lpips not installed>") / f"{net}.pth"
    return Path(spec.origin).parent / "weights" / "v0.1" / f"{net}.pth"


def cleanfid_dirs() -> list[Path]:
    env = os.environ.get("DIPBENCH_CLEANFID_DIR")
    if env:
        return [Path(env).expanduser()]
    return [torch_home() / "cleanfid", Path("/tmp")]


def inception_dir() -> Path | None:
    """The first folder holding clean-fid's Inception file, or None."""
    for d in cleanfid_dirs():
        if (d / INCEPTION_FILE).is_file():
            return d
    return None


def status() -> dict:
    """{component: (present, path)} for every weight file the perceptual metrics need."""
    out = {}
    for net in ("alex", "vgg"):
        out[f"lpips_{net} backbone"] = (backbone_file(net).is_file(), str(backbone_file(net)))
        out[f"lpips_{net} linear head"] = (lpips_head_file(net).is_file(), str(lpips_head_file(net)))
    d = inception_dir()
    out["fid inception"] = (d is not None, str((d or cleanfid_dirs()[0]) / INCEPTION_FILE))
    return out


@contextlib.contextmanager
def socket_timeout(seconds: float = 5.0):
    """A short default socket timeout: should anything still try the network, it fails fast."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)
