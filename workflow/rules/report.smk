import os as _os


def _tables_file():
    t = config.get("tables") or {}
    if isinstance(t, dict) and t.get("specs") is not None:
        return []  # inline specs: they are in params, a change re-runs the rule
    f = (t.get("file") if isinstance(t, dict) else None) or "config/tables.yaml"
    return [f if _os.path.isabs(f) else _os.path.join(workflow.basedir, f)]


rule report:
    """Paper-style tables (Markdown + LaTeX), figures and the entry page index.md.
    The HTML report:  snakemake --report report.html  (same --configfile), built from the
    report() annotations below."""
    input:
        leaderboard=RES + "/leaderboard.csv",
        runs=lambda w: [r + "/run.json" for r in all_runs()],
        specs=lambda w: _tables_file(),
        gmm=lambda w: [RES + "/gmm_table.csv"] if config.get("gmm_table") else [],
    output:
        index=report(RES + "/report/index.md", category="Report"),
        tables=report(directory(RES + "/report/tables"), patterns=["{name}.md"], category="Tables"),
        figures=report(directory(RES + "/report/figures"), patterns=["{name}.png"], category="Figures"),
    params:
        tables=lambda w: config.get("tables", {}),
        report=lambda w: config.get("report", {}),
    log:
        LOGS + "/report.log",
    localrule: True  # on a cluster: on the submitting machine, right after aggregate
    resources:
        mem_mb=4000,
        runtime=20,
    run:
        jobs.report(config, input, output, log)


rule prefetch_metrics:
    """Download the LPIPS backbones and clean-fid's Inception weights (needs internet):
    snakemake --cores 1 prefetch_metrics"""
    localrule: True
    shell:
        "python -m metrics.prefetch"
