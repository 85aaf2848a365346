import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _log import logger  # noqa: E402

from dipbench.pipeline import aggregate  # noqa: E402

aggregate(snakemake.config, [Path(p).parent for p in snakemake.input.scores], snakemake.output[0],  # noqa: F821
          log=logger(snakemake))  # noqa: F821
