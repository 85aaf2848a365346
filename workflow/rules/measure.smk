rule measure:
    """y = A(x) + sigma_y eps, once per dataset x task x seed, shared by every solver."""
    output:
        npz=MEAS + "/measurement.npz",
        meta=MEAS + "/meta.json",
    params:
        spec=lambda w: dict(dataset=C.dataset_entry(config, w.dataset), task=C.task_entry(config, w.task)),
    log:
        LOGS + "/measure/{dataset}/{task}/seed{seed}.log",
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/measure.py"
