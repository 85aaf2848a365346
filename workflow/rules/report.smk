rule report:
    """Paper-style tables (Markdown + LaTeX) and the entry page."""
    input:
        RES + "/leaderboard.csv",
    output:
        index=RES + "/report/index.md",
    params:
        tables=lambda w: config.get("tables", {}),
    log:
        LOGS + "/report.log",
    script:
        "../scripts/report.py"
