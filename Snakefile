# dipbench: dataset x task x solver x seed -> measure -> solve -> score -> aggregate -> report.
# Run from the repository root:  snakemake --cores all   (config/default.yaml)
#                                snakemake --cores all --configfile config/ci.yaml
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from dipbench import config as C  # noqa: E402

if not config:  # no --configfile given: the embedded default (a given one replaces it, never merges)
    import yaml

    with open(Path(workflow.basedir) / "config" / "default.yaml") as _f:
        config.update(yaml.safe_load(_f))

C.validate(config)  # fails here, before any job, naming the bad key

RES = config["results"]
DATASETS = list(config["datasets"])
TASKS = list(config["tasks"])
SOLVERS = list(C.solver_entries(config))
SEEDS = [int(s) for s in config["seeds"]]

wildcard_constraints:
    dataset="[A-Za-z0-9_.+-]+",
    task="[A-Za-z0-9_.+-]+",
    solver="[A-Za-z0-9_.+=-]+",
    seed=r"\d+",

include: "workflow/rules/common.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/solve.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/gmm.smk"
include: "workflow/rules/run_control.smk"
for _extra in ("train.smk", "prefetch.smk", "perf.smk", "estimate.smk"):
    if (Path(workflow.basedir) / "workflow" / "rules" / _extra).exists():
        include: f"workflow/rules/{_extra}"

rule all:
    default_target: True
    input:
        f"{RES}/leaderboard.csv",
        f"{RES}/report/index.md",
        [f"{RES}/gmm_table.csv"] if config.get("gmm_table") else [],
