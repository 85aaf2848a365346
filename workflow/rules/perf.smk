rule perf:
    """Benchmark (not part of the default target): overhead per NFE, throughput, peak memory.
    snakemake --cores all perf   ->  results/report/perf.md (+ perf.json)"""
    output:
        md=RES + "/report/perf.md",
        json=RES + "/report/perf.json",
    params:
        priors=lambda w: ",".join(config.get("perf", {}).get("priors", ["edm_unet", "gaussian_fit"])),
        tasks=lambda w: ",".join(config.get("perf", {}).get("tasks", ["inpaint_half", "sr_x2"])),
        batches=lambda w: ",".join(str(b) for b in config.get("perf", {}).get("batches", [1, 4, 16])),
        budget=lambda w: config.get("perf", {}).get("budget", "small"),
        ci=lambda w: config.get("perf", {}).get("ci_split", "config/ci.yaml"),
    threads: 2
    shell:
        "python -m benchmarks.perf --priors {params.priors} --tasks {params.tasks} --batches {params.batches}"
        " --budget {params.budget} --threads {threads} --out {output.json} --md {output.md}"
        " --ci-split {params.ci}"
