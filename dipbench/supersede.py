"""Never overwrite a result silently: before a run re-makes measurements or runs that exist (their
config, data or checkpoint changed, or a job is re-run on request), the existing files are kept
under ``<results>/superseded/<UTC time>/`` (hard links where possible, so nothing is copied) with
the same relative paths, and the run says so.  Snakemake removes a job's old outputs when the
job starts, so a re-made job that then fails (e.g. ``n_images`` beyond a dataset that could not
be listed beforehand) no longer takes the good results with it: they are in that folder.

Called from the Snakefile's onstart (workflow/rules/run_control.smk), before any job runs.
Restore: move the files back (``cp -al <results>/superseded/<time>/. <results>/``).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

RULES = ("measure", "solve", "score")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def keep(paths, results, stamp: str | None = None) -> Path | None:
    """Hard-link each existing file/folder of ``paths`` (under ``results``) into
    ``results/superseded/<stamp>/``; returns that folder, or None when nothing existed."""
    results = Path(results).resolve()
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest_root = results / "superseded" / stamp
    kept = 0
    for p in paths:
        p = Path(p).resolve()
        if not p.exists():
            continue
        try:
            rel = p.relative_to(results)
        except ValueError:
            continue  # not a result of this run (outside its results folder)
        dst = dest_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if p.is_dir():
            shutil.copytree(p, dst, copy_function=_link_or_copy, dirs_exist_ok=True)
        else:
            _link_or_copy(str(p), str(dst))
        kept += 1
    return dest_root if kept else None


def keep_from_dag(workflow, results, log=print) -> Path | None:
    """The outputs of the measure/solve/score jobs this run is about to re-make, kept (see above)."""
    dag = getattr(workflow, "dag", None)
    if dag is None:
        return None
    paths = []
    for job in dag.needrun_jobs():
        if job.rule.name in RULES:
            paths += [str(f) for f in job.output if os.path.exists(str(f))]
    if not paths:
        return None
    where = keep(paths, results)
    if where is not None:
        log(f"dipbench: {len(paths)} existing result file(s) are about to be re-made (changed config, "
            f"data or checkpoint, or a re-run); the old ones are kept in {where}")
    return where
