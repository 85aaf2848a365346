# How a run uses this machine, stops, and (on SLURM) checks its requests before submitting.
#
# Local runs: Snakemake gets a memory budget, the global resource mem_mb = 85% of this machine's
# memory (dipbench/jobs.py: machine_mem_mb), unless `--resources mem_mb=N` is given: jobs then run
# at once only while the sum of their mem_mb requests fits (a 256x256 solve asks 32000 MB, more
# than a 24 GB machine: it is capped at the budget and runs alone).
# Stopping (local): Ctrl-C once -- running jobs stop at their next network call, their outputs are
# marked incomplete and re-made by the next run; Ctrl-C twice -- exit at once (lock released).
# SIGTERM -- the same as one Ctrl-C, except that Snakemake waits for the running jobs to end.
# Cluster runs: onstart checks with sinfo that every submission fits a node (dipbench/slurm_preflight.py).
# Scheduling: onstart stops Snakemake's scheduler from spinning (dipbench/scheduler_fix.py).
from dipbench import progress as _progress
from dipbench import scheduler_fix as _scheduler_fix

_LOCAL_MEM_MB = None
if workflow.is_main_process and workflow.nodes is None and "mem_mb" not in workflow.global_resources:
    _LOCAL_MEM_MB = jobs.machine_mem_mb()
    workflow.global_resources["mem_mb"] = _LOCAL_MEM_MB


onstart:
    if workflow.is_main_process:
        _progress.install_signal_handlers(unlock=workflow.persistence.unlock)
        if _scheduler_fix.calm(getattr(workflow, "scheduler", None), workflow.local_exec) is None:
            print("dipbench: Snakemake's scheduler is not the expected one: its re-evaluation "
                  "timers are left as they are", file=sys.stderr, flush=True)
        if _LOCAL_MEM_MB:
            print(f"dipbench: local memory budget mem_mb={_LOCAL_MEM_MB} (85% of this machine; "
                  "--resources mem_mb=N to change it)", file=sys.stderr, flush=True)
        plugin = workflow.executor_plugin
        if plugin is not None and getattr(plugin, "cli_prefix", "") == "slurm":
            from dipbench import slurm_preflight

            slurm_preflight.check_workflow(workflow, config,
                                           log=lambda m: print(m, file=sys.stderr, flush=True))
