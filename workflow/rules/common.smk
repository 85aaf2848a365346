from pathlib import Path

MEAS = RES + "/measurements/{dataset}/{task}/seed{seed}"
RUN = RES + "/runs/{dataset}/{task}/{solver}/seed{seed}"
LOGS = RES + "/logs"


def all_runs():
    return [RUN.format(dataset=d, task=t, solver=s, seed=k)
            for d in DATASETS for t in TASKS for s in SOLVERS for k in SEEDS]
