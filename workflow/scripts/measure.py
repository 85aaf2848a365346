import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _log import logger  # noqa: E402

from dipbench.pipeline import measure  # noqa: E402

w = snakemake.wildcards  # noqa: F821
log = logger(snakemake)  # noqa: F821
measure(snakemake.config, w.dataset, w.task, int(w.seed), Path(snakemake.output.npz).parent)  # noqa: F821
log(f"measured {w.dataset}/{w.task}/seed{w.seed}")
