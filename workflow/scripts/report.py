from pathlib import Path

from report.build import build_report

build_report(snakemake.config, snakemake.input[0], Path(snakemake.output.index).parent)  # noqa: F821
