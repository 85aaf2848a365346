rule score:
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
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/score.py"


rule aggregate:
    input:
        scores=lambda w: [r + "/scores.csv" for r in all_runs()],
    output:
        RES + "/leaderboard.csv",
    log:
        LOGS + "/aggregate.log",
    script:
        "../scripts/aggregate.py"
