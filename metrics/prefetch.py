"""Download the perceptual metrics' weights into the caches the metrics read (run online).

    python -m metrics.prefetch            # LPIPS alex + vgg backbones, clean-fid Inception
    python -m metrics.prefetch --check    # only report what is present (no network)
    snakemake --cores 1 prefetch_metrics  # the same through the workflow

Targets (see ``metrics.weights``): torchvision's AlexNet / VGG-16 ImageNet checkpoints into
``$TORCH_HOME/hub/checkpoints`` (through torchvision's own ``get_state_dict``, which checks the
file's hash) and clean-fid's ``inception-2015-12-05.pt`` into ``$DIPBENCH_CLEANFID_DIR`` or
``$TORCH_HOME/cleanfid`` (through clean-fid's ``check_download_inception``).
"""
from __future__ import annotations

import argparse
import os
import socket
import sys

from . import weights as W


def fetch_backbone(net: str) -> str:
    import torchvision.models as tvm

    _, enum = W.LPIPS_BACKBONES[net]
    getattr(tvm, enum).IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    return str(W.backbone_file(net))


def fetch_inception() -> str:
    from cleanfid.downloads_helper import check_download_inception

    d = W.cleanfid_dirs()[0]
    d.mkdir(parents=True, exist_ok=True)
    return check_download_inception(fpath=str(d))


def report() -> int:
    missing = 0
    for name, (ok, path) in W.status().items():
        print(f"{'ok     ' if ok else 'MISSING'} {name}: {path}")
        missing += not ok
    return missing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only list what is present; no downloads")
    ap.add_argument("--nets", nargs="*", default=["alex", "vgg"], choices=sorted(W.LPIPS_BACKBONES))
    ap.add_argument("--no-fid", action="store_true", help="skip clean-fid's Inception weights")
    ap.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    a = ap.parse_args(argv)
    if a.check:
        return 1 if report() else 0
    socket.setdefaulttimeout(a.timeout)
    failed = []
    for net in a.nets:
        try:
            print(f"lpips_{net} backbone -> {fetch_backbone(net)}")
        except Exception as e:  # report every failure, then exit non-zero
            failed.append(f"lpips_{net}: {type(e).__name__}: {e}")
    if not a.no_fid:
        try:
            print(f"fid inception -> {fetch_inception()}")
        except Exception as e:
            failed.append(f"fid: {type(e).__name__}: {e}")
    for f in failed:
        print("FAILED", f, file=sys.stderr)
    report()
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
