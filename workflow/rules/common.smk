from pathlib import Path

from dipbench import inputs as _inputs
from dipbench import jobs
from dipbench.pipeline import failure_count as _failure_count

MEAS = RES + "/measurements/{dataset}/{task}/seed{seed}"
RUN = RES + "/runs/{dataset}/{task}/{solver}/seed{seed}"
LOGS = RES + "/logs"


def all_runs():
    # every dataset x task x solver x seed, minus the tasks a solver entry's `tasks:` leaves out
    return [RUN.format(dataset=d, task=t, solver=s, seed=k) for d, t, s, k in C.planned_runs(config)]


# ---------------------------------------------------------------- resources (per job, per attempt)
# Functions of the config and the dataset; `attempt` grows memory and runtime on Snakemake retries.
# The cluster/workstation profiles override them with set-resources where needed.
def solve_resource(key):
    def f(wildcards, attempt):
        if key == "runtime":  # from the cost estimate (dipbench/estimate.py) where one exists
            return C.solve_resources(config, wildcards.dataset, attempt, wildcards.task, wildcards.solver)[key]
        return C.solve_resources(config, wildcards.dataset, attempt)[key]
    return f


def cpu_resource(rule, key, **defaults):
    def f(wildcards, attempt):
        return C.rule_resources(config, rule, attempt, **defaults)[key]
    return f


# ---------------------------------------------------------------- cluster submissions (groups)
# Groups only matter to cluster executors (local runs ignore them).  Small images: one submission
# per dataset x task x seed (`cell_...`: measure, every solver, every score, in series within
# --cores); larger images: one per solve with its score (`run`; scoring never waits for other
# solves), measure jobs bundled by `group-components: measure=N` (slurm/config.yaml).
def cluster_group(rule):
    def f(wildcards):
        if C.solve_bundle(config, wildcards.dataset) == "cell":
            return f"cell_{wildcards.dataset}_{wildcards.task}_seed{wildcards.seed}"
        return "measure" if rule == "measure" else "run"
    return f


def solve_spec(wildcards):
    """The solve rule's params: the solver's own entry (content addressing: editing one solver's
    hyperparameters re-runs only that solver's jobs) and, once a run has failed, its failure count
    (so the next invocation sees changed params and re-runs it; see dipbench/pipeline.py)."""
    spec = dict(solver=C.solver_entries(config)[wildcards.solver], batch_size=config["batch_size"],
                device=config["device"])
    # the checkpoint file(s) by path, size and mtime: a swapped checkpoint re-solves (dipbench/inputs.py)
    spec["checkpoints"] = _inputs.checkpoint_fingerprint(config, wildcards.dataset)
    if config.get("speed"):   # GPU switches (autocast, compile) can change the numbers: re-solve
        spec["speed"] = config["speed"]
    n = _failure_count(RUN.format(**wildcards))
    if n:
        spec["retry"] = n
    return key_sorted(spec)


def key_sorted(obj):
    """Params with every mapping's keys in sorted order: Snakemake compares params as written, so
    reordering keys in a config file (a tool rewriting it) must not re-run jobs."""
    if isinstance(obj, dict):
        return {k: key_sorted(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [key_sorted(v) for v in obj]
    return obj
