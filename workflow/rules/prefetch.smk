# Download the checkpoints this config needs (priors/checkpoints.yaml), sha256-checked, into
# resources_dir()/checkpoints (or config prefetch.root).  Runs on the submitting machine (it needs
# internet); compute jobs never download and fail naming the missing file and this command.
#   snakemake prefetch --cores 1 --configfile config/paper/<grid>.yaml
# Config (optional):
#   prefetch:
#     root: /path/to/resources          # default $DIPBENCH_RESOURCES or <repo>/resources
#     checkpoints: [adm_ffhq256]        # extra names beyond those the datasets' priors need
import yaml as _pf_yaml
from pathlib import Path as _PFPath

_PF = dict(config.get("prefetch", {}) or {})

localrules: prefetch


rule prefetch:
    """No-op where the files are present; never part of the default target."""
    input:
        registry="priors/checkpoints.yaml",
    output:
        stamp=str(_PFPath(config.get("results", "results")) / "prefetch.done"),
    params:
        root=("--root " + str(_PF["root"])) if _PF.get("root") else "",
        cfg=str(_PFPath(config.get("results", "results")) / "prefetch.config.yaml"),
    run:
        _PFPath(params.cfg).parent.mkdir(parents=True, exist_ok=True)
        with open(params.cfg, "w") as f:
            _pf_yaml.safe_dump(dict(config), f)
        shell("python -m dipbench.prefetch --configfile {params.cfg} {params.root} --stamp {output.stamp}")
