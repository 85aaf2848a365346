"""Write a full-size checkpoint with random weights in a release's file format, for smoke runs of
the paper path without the real weights (config/smoke256.yaml).

    python -m benchmarks.random_checkpoint adm_ffhq256 --out results/paper_smoke/resources/checkpoints/ffhq_10m.pt

Format: the guided-diffusion / DPS releases are ``torch.save(model.state_dict())`` of
guided_diffusion.unet.UNetModel (guided-diffusion train_util.py saves
``mp_trainer.master_params_to_state_dict(...)`` with ``th.save``): a flat dict of parameter names
to tensors.  priors/adm.py's ADMUNet has the same names and shapes (checked against the official
code's own fixture, tests/test_checkpoint_fixtures.py, and the full-size manifests,
tests/test_checkpoints.py), so its seeded random state dict is a file of that format.
An existing file is never overwritten (it may be the real checkpoint) unless it was written by
this script (a ``<file>.random`` marker beside it) or --force is given.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ADM = {"adm_ffhq256": "ffhq256", "adm_imagenet256": "imagenet256"}


def write(name: str, out, seed: int = 0, force: bool = False) -> Path:
    import torch

    from priors import adm

    if name not in ADM:
        raise SystemExit(f"random_checkpoint: unknown prior {name!r}; one of {', '.join(ADM)}")
    out = Path(out)
    marker = out.with_name(out.name + ".random")
    if out.exists() and not marker.exists() and not force:
        raise SystemExit(f"random_checkpoint: {out} exists and was not written by this script (it may "
                         f"be the real checkpoint); not overwritten (--force to replace it)")
    if out.exists() and marker.exists() and marker.read_text().strip() == f"{name} seed {seed}":
        return out  # already there
    torch.manual_seed(seed)
    net = adm.ADMUNet(**adm.CONFIGS[ADM[name]])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, out)
    marker.write_text(f"{name} seed {seed}\n")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prior", choices=sorted(ADM))
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    path = write(a.prior, a.out, a.seed, a.force)
    print(f"{a.prior}: random weights (seed {a.seed}) at {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
