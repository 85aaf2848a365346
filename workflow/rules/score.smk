rule score:
    """Per-image metrics of one run (CPU).  On a cluster it runs in its solve's submission, right
    after the solve (workflow/rules/common.smk: cluster_group), so scoring never waits for other solves."""
    input:
        npz=MEAS + "/measurement.npz",
        meta=MEAS + "/meta.json",
        recon=RUN + "/recon.npz",
        run=RUN + "/run.json",
    output:
        csv=RUN + "/scores.csv",
        json=RUN + "/scores.json",
    params:
        metrics=lambda w: list(config["metrics"]),
    log:
        LOGS + "/score/{dataset}/{task}/{solver}/seed{seed}.log",
    group:
        cluster_group("score")
    threads: 1
    resources:
        mem_mb=cpu_resource("score", "mem_mb", mem_mb=4000, runtime=20),
        runtime=cpu_resource("score", "runtime", mem_mb=4000, runtime=20),
    run:
        jobs.score(config, input, output, threads, log)


rule aggregate:
    """results/leaderboard.csv: one row per run; failed and diverged runs are rows too (status,
    n_diverged, n_failed, reason), so the tables can mark them."""
    input:
        scores=lambda w: [r + "/scores.csv" for r in all_runs()],
    output:
        RES + "/leaderboard.csv",
    log:
        LOGS + "/aggregate.log",
    localrule: True
    resources:
        mem_mb=cpu_resource("aggregate", "mem_mb", mem_mb=4000, runtime=20),
        runtime=cpu_resource("aggregate", "runtime", mem_mb=4000, runtime=20),
    run:
        jobs.aggregate(config, input, output, log)
