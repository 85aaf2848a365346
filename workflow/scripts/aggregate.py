from pathlib import Path

from dipbench.pipeline import aggregate

aggregate(snakemake.config, [Path(p).parent for p in snakemake.input.scores], snakemake.output[0])  # noqa: F821
