rule solve:
    """One job per dataset x task x solver x seed: all images, batched (config batch_size); the
    prior is loaded once per job and the measurement is shared by every solver.  A solver that
    raises is recorded as `failed` (the job succeeds; re-run on the next invocation); NaN/inf
    images are recorded as `diverged`."""
    input:
        npz=MEAS + "/measurement.npz",
        meta=MEAS + "/meta.json",
    output:
        recon=RUN + "/recon.npz",
        pngs=directory(RUN + "/recon"),
        run=RUN + "/run.json",
    params:
        spec=solve_spec,
    group:
        cluster_group("solve")
    log:
        LOGS + "/solve/{dataset}/{task}/{solver}/seed{seed}.log",
    threads: 1  # profiles raise it (set-threads in slurm/ and profiles/gpu-workstation/)
    resources:
        # read by snakemake-executor-plugin-slurm as --gpus=1 (gpu_model: add in the profile);
        # locally, `--resources gpu=N` admits N solve jobs at once (profiles/gpu-workstation)
        gpu=solve_resource("gpu"),
        mem_mb=solve_resource("mem_mb"),
        runtime=solve_resource("runtime"),
    run:
        jobs.solve(config, wildcards, input, output, threads, log)
