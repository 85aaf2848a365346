# MGPS Table 1 toy (benchmarks/gmm_table.py): 25-component Gaussian mixture, exact posterior,
# sliced Wasserstein of every sampler and MAP solver, 95% CI over replicates.  Part of the default
# target when the config has a `gmm_table:` section (config/gmm.yaml, config/ci.yaml); the report
# step renders the CSV as the `mgps_table1_gmm` table (config/tables.yaml).
#   gmm_table:
#     dims: [10, 40]         # dimensions (even); the paper's Table 1 has several
#     d_y: 1                 # rows of the random A (MGPS default)
#     sigma_y: 0.5
#     replicates: 5          # problems per dimension (new A, x*, y, mixture weights each)
#     samples: 500           # posterior samples per sampler and replicate
#     slices: 100
#     quick: true            # reduced step counts (benchmarks/gmm_table.py QUICK) instead of the defaults
#     solvers: [...]         # default: every sampler and MAP solver of the table
def _gmm_args():
    g = dict(config.get("gmm_table") or {})
    args = []
    if g.get("quick", True):
        args.append("--quick")
    for key, flag in (("dims", "--dims"), ("solvers", "--solvers")):
        if g.get(key):
            args += [flag, *map(str, g[key])]
    for key, flag in (("d_y", "--dy"), ("sigma_y", "--sigma-y"), ("replicates", "--replicates"),
                      ("samples", "--samples"), ("slices", "--slices")):
        if g.get(key) is not None:
            args += [flag, str(g[key])]
    return " ".join(args)


rule gmm_table:
    """One job: every solver x dimension x replicate of the GMM toy (CPU, minutes in quick mode).
    Runs in the Snakemake process like the other rules (dipbench/jobs.py); a line per replicate
    and a heartbeat every 10 s reach the terminal."""
    input:
        code=["benchmarks/gmm_table.py", "priors/gmm.py", "dipbench/sliced_wasserstein.py"],
    output:
        csv=RES + "/gmm_table.csv",
        md=RES + "/gmm_table.md",
    params:
        args=_gmm_args(),
    log:
        LOGS + "/gmm_table.log",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    run:
        jobs.gmm_table([*params.args.split(), "--out", output.csv, "--md", output.md], threads, log)
