rule solve:
    """One job per dataset x task x solver x seed; all images, batched; prior loaded once."""
    input:
        npz=MEAS + "/measurement.npz",
        meta=MEAS + "/meta.json",
    output:
        recon=RUN + "/recon.npz",
        pngs=directory(RUN + "/recon"),
        run=RUN + "/run.json",
    params:
        # content addressing: editing one solver's entry re-runs only that solver's jobs
        spec=lambda w: dict(solver=C.solver_entries(config)[w.solver], batch_size=config["batch_size"],
                            device=config["device"]),
    log:
        LOGS + "/solve/{dataset}/{task}/{solver}/seed{seed}.log",
    resources:
        mem_mb=8000,
        runtime=120,
    script:
        "../scripts/solve.py"
