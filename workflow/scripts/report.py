# No sys.path tweak for _log here: this file is named report.py and would shadow the report package.
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from report.build import build_report  # noqa: E402

out = Path(snakemake.output.index).parent  # noqa: F821
for d in (snakemake.output.tables, snakemake.output.figures):  # noqa: F821
    Path(d).mkdir(parents=True, exist_ok=True)  # directory outputs exist even when empty
written = build_report(snakemake.config, snakemake.input.leaderboard, out)  # noqa: F821
msg = f"report: {len(written)} files under {out}"
print(msg)
if len(snakemake.log):  # noqa: F821
    Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)  # noqa: F821
    Path(snakemake.log[0]).write_text(msg + "\n")  # noqa: F821
