import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _log import logger  # noqa: E402

import torch  # noqa: E402

from dipbench.pipeline import score  # noqa: E402

torch.set_num_threads(max(1, int(snakemake.threads)))  # noqa: F821
log = logger(snakemake)  # noqa: F821
score(snakemake.config, Path(snakemake.input.npz).parent, Path(snakemake.output.csv).parent)  # noqa: F821
log(f"scored {Path(snakemake.output.csv).parent}")  # noqa: F821
