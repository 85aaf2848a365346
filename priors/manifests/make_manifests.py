"""Write the key/shape manifests of the released checkpoints' state dicts (JSON beside this file).

    python priors/manifests/make_manifests.py

Each manifest is built on the meta device (no memory) from the *published* architecture
configuration of a release (recorded in the JSON under "config" with its source), using this
repository's re-implementation.  The tests load a state dict with exactly these names and
shapes, and separately check hand-written names/shapes known from the published architectures,
so the manifest is not the only evidence.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

EDM_IMAGENET64 = dict(img_resolution=64, img_channels=3, label_dim=1000, model_type="DhariwalUNet",
                      model_channels=192, channel_mult=[1, 2, 3, 4], channel_mult_emb=4, num_blocks=3,
                      attn_resolutions=[32, 16, 8], dropout=0.1)


def manifests() -> dict:
    from priors.adm import ADMUNet, CONFIGS
    from priors.edm_pickle import EDMPrecond

    out = {}
    src = {"ffhq256": "DPS (Chung et al. 2023) configs/model_config.yaml for ffhq_10m.pt",
           "imagenet256": "guided-diffusion README, 256x256_diffusion_uncond.pt flags"}
    for name, cfg in CONFIGS.items():
        with torch.device("meta"):
            net = ADMUNet(**cfg)
        out[f"adm_{name}"] = dict(
            source=src[name], config={k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
            keys={k: list(v.shape) for k, v in net.state_dict().items()})
    with torch.device("meta"):
        net = EDMPrecond(**EDM_IMAGENET64)
    out["edm_imagenet64"] = dict(
        source="EDM (Karras et al. 2022) train.py flags --arch=adm --cond=1 for ImageNet-64; "
               "state dict of the pickle's 'ema' network (EDMPrecond + DhariwalUNet)",
        config=EDM_IMAGENET64, keys={k: list(v.shape) for k, v in net.state_dict().items()})
    from priors.ldm import UNET_CONFIG, VQ_CONFIG, ADMUNet, VQModel

    with torch.device("meta"):
        unet, vq = ADMUNet(**UNET_CONFIG), VQModel(**VQ_CONFIG)
    keys = {f"model.diffusion_model.{k}": list(v.shape) for k, v in unet.state_dict().items()}
    keys.update({f"first_stage_model.{k}": list(v.shape) for k, v in vq.state_dict().items()})
    out["ldm_celebahq256"] = dict(
        source="latent-diffusion configs/latent-diffusion/celebahq-ldm-vq-4.yaml (unet_config, "
               "first_stage_config); keys of the checkpoint's state_dict (EMA and schedule buffers omitted)",
        config=dict(unet={k: list(v) if isinstance(v, tuple) else v for k, v in UNET_CONFIG.items()},
                    first_stage={k: list(v) if isinstance(v, tuple) else v for k, v in VQ_CONFIG.items()}),
        keys=keys)
    out["ldm_ffhq256"] = dict(
        source="latent-diffusion configs/latent-diffusion/ffhq-ldm-vq-4.yaml: its model section "
               "(unet_config, first_stage_config, schedule) equals celebahq-ldm-vq-4.yaml's; keys of "
               "the checkpoint's state_dict (EMA and schedule buffers omitted)",
        config=out["ldm_celebahq256"]["config"], keys=dict(keys))
    from priors.consistency import CONFIG_IMAGENET64

    with torch.device("meta"):
        net = ADMUNet(**CONFIG_IMAGENET64)
    out["cm_imagenet64"] = dict(
        source="consistency_models cm/script_util.py create_model with the ImageNet-64 flags of "
               "scripts/launch.sh (class_cond, 192 channels, 3 res blocks, attention 32,16,8, 64 channels "
               "per head, scale-shift norm, resblock up/down); the state dict of cd_imagenet64_lpips.pt, "
               "cd_imagenet64_l2.pt and ct_imagenet64.pt",
        config={k: list(v) if isinstance(v, tuple) else v for k, v in CONFIG_IMAGENET64.items()},
        keys={k: list(v.shape) for k, v in net.state_dict().items()})
    from operators.deblur_nonlinear import CONFIG, KernelWizard

    with torch.device("meta"):
        net = KernelWizard(**CONFIG)
    out["bkse_gopro_wvae"] = dict(
        source="blur-kernel-space-exploring options/generate_blur/default.yml (KernelWizard: nf 64, "
               "front_RBs 10, back_RBs 20, kernel_dim 512, use_vae, extractor n_blocks 4, no norm); "
               "the state dict of GOPRO_wVAE.pth (operator deblur_nonlinear)",
        config=dict(CONFIG), keys={k: list(v.shape) for k, v in net.state_dict().items()})
    return out


if __name__ == "__main__":
    for name, m in manifests().items():
        n = sum(int(torch.tensor(s).prod()) if s else 1 for s in m["keys"].values())
        m["n_keys"], m["n_values"] = len(m["keys"]), n
        (HERE / f"{name}.json").write_text(json.dumps(m, indent=1) + "\n")
        print(f"{name}: {len(m['keys'])} keys, {n} values")
