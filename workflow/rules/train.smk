# Train the embedded EDM U-Net prior (priors/train_edm.py).  Not part of the default target:
#   snakemake train_prior --cores 2                       (CPU, time-budgeted)
#   snakemake train_prior --profile slurm                 (cluster; the rule asks for one GPU)
# Config (all optional), e.g. in a --configfile:
#   train_prior:
#     config: priors/weights/edm_unet_skimage32.train.yaml   # training config (its result: is ignored)
#     out: results/train/edm_unet_skimage32.pt               # weights; .sha256/.log.csv/.loss.png/.train.yaml beside it
#     max_minutes: 73                                       # override the wall-clock budget (the config says 73)
#     max_steps: null                                       # override the step budget
#     threads: 2
#     gpus: 1                                               # resource hint for cluster executors
# Copy the outputs into priors/weights/ (all five files together) to replace the committed prior.
from pathlib import Path as _TPPath

_TP = dict(config.get("train_prior", {}) or {})
_TP_OUT = str(_TP.get("out", str(_TPPath(config.get("results", "results")) / "train" / "edm_unet_skimage32.pt")))
_TP_STEM = _TP_OUT[: -len(".pt")] if _TP_OUT.endswith(".pt") else _TP_OUT
_TP_ARGS = " ".join(
    f"--{k.replace('_', '-')} {_TP[k]}" for k in ("max_minutes", "max_steps") if _TP.get(k) is not None
)


rule train_prior:
    """Train the EDM U-Net prior on skimage32 train crops; the inputs are the code and its config."""
    input:
        config=_TP.get("config", "priors/weights/edm_unet_skimage32.train.yaml"),
        code=["priors/edm_unet.py", "priors/train_edm.py", "data/skimage32.py"],
    output:
        weights=_TP_OUT,
        sha256=_TP_STEM + ".sha256",
        train_yaml=_TP_STEM + ".train.yaml",
        log_csv=_TP_STEM + ".log.csv",
        curve=_TP_STEM + ".loss.png",
    params:
        args=_TP_ARGS,
    log:
        str(_TPPath(config.get("results", "results")) / "logs" / "train_prior.log"),
    threads: int(_TP.get("threads", 2))
    resources:
        gpu=int(_TP.get("gpus", 1)),
        mem_mb=8000,
        runtime=int(float(_TP.get("max_minutes", 73)) + 30),
    shell:
        "OMP_NUM_THREADS={threads} python -m priors.train_edm --config {input.config} "
        "--out {output.weights} {params.args} > {log} 2>&1"
