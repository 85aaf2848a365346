# Cost estimate on a dry run (snakemake -n): one line with the device-hours of the grid's solve jobs
# and the longest job (dipbench/estimate.py; `python -m dipbench.estimate --configfile CFG` gives
# the table per dataset x solver).
import re as _re

# workflow.dryrun is only known once execution starts (after the Snakefile is read): read the
# command line too (-n, --dry-run, --dryrun, or a short-flag cluster such as -np / -nq)
_DRY = workflow.dryrun or any(a in ("--dry-run", "--dryrun") or _re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a)
                              for a in sys.argv[1:])
if workflow.is_main_process and _DRY:
    try:
        from dipbench import estimate as _estimate

        print("dipbench: " + _estimate.summary_line(_estimate.estimate(config)), file=sys.stderr, flush=True)
    except Exception as _e:  # noqa: BLE001 - an estimate never stops a dry run
        print(f"dipbench: no cost estimate ({type(_e).__name__}: {_e})", file=sys.stderr, flush=True)
