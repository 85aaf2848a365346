import os as _os


def _tables_file():
    t = config.get("tables") or {}
    if isinstance(t, dict) and t.get("specs") is not None:
        return []  # inline specs: they are in params, a change re-runs the rule
    f = (t.get("file") if isinstance(t, dict) else None) or "config/tables.yaml"
    return [f if _os.path.isabs(f) else _os.path.join(workflow.basedir, f)]


def _in_report(path, **kw):
    """report(path, ...) once the file exists: `snakemake --report` then lists it; before any run of
    this config (e.g. the bare command after a run of another --configfile) there is nothing to list
    and the report is made without it instead of failing on a missing file."""
    return report(path, **kw) if _os.path.exists(path) else path


report: "../../report/templates/workflow.rst"


rule report:
    """Paper-style tables (Markdown + LaTeX), figures, the entry page index.md and the HTML
    leaderboard index.html (pages/, static/, img/ beside it; report/html.py).
    Snakemake's own report:  snakemake --report report.html  (same --configfile), built from the
    report() annotations below; it links the HTML leaderboard."""
    input:
        leaderboard=RES + "/leaderboard.csv",
        runs=lambda w: [r + "/run.json" for r in all_runs()],
        specs=lambda w: _tables_file(),
        gmm=lambda w: [RES + "/gmm_table.csv"] if config.get("gmm_table") else [],
    output:
        index=_in_report(RES + "/report/index.md", category="Report",
                         caption="../../report/templates/leaderboard.rst"),
        html=RES + "/report/index.html",  # the HTML leaderboard (linked from the captions, not embedded)
        pages=directory(RES + "/report/pages"),
        static=directory(RES + "/report/static"),
        images=directory(RES + "/report/img"),
        tables=_in_report(directory(RES + "/report/tables"), patterns=["{name}.md"], category="Tables"),
        figures=_in_report(directory(RES + "/report/figures"), patterns=["{name}.png"], category="Figures"),
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
