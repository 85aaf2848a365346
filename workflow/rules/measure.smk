rule measure:
    """y = A(x) + sigma_y eps, once per dataset x task x seed, shared by every solver.
    CPU job; on a cluster it is bundled (workflow/rules/common.smk: cluster_group): with its cell's
    solves and scores for small images, else with other measure jobs (group-components in slurm/)."""
    output:
        npz=MEAS + "/measurement.npz",
        meta=MEAS + "/meta.json",
    params:
        spec=lambda w: key_sorted(C.measure_spec(config, w.dataset, w.task)),  # + oracle_init sigmas when asked for
        # the image files (root, list, each file's size and mtime): a swapped data folder re-measures
        inputs=lambda w: _inputs.data_fingerprint(config, w.dataset),
    log:
        LOGS + "/measure/{dataset}/{task}/seed{seed}.log",
    group:
        cluster_group("measure")
    threads: 1
    resources:
        mem_mb=cpu_resource("measure", "mem_mb", mem_mb=4000, runtime=20),
        runtime=cpu_resource("measure", "runtime", mem_mb=4000, runtime=20),
    run:
        jobs.measure(config, wildcards, output, log)
