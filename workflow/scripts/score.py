from pathlib import Path

from dipbench.pipeline import score

score(snakemake.config, Path(snakemake.input.npz).parent, Path(snakemake.output.csv).parent)  # noqa: F821
