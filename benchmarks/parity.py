"""Parity with the official implementations: recompute our side of every record and print the table.

    python -m benchmarks.parity                  # recompute all records, print the Markdown table
    python -m benchmarks.parity --only ddnm      # records whose id contains "ddnm" (just the one whose id equals it, if any)
    python -m benchmarks.parity --write          # also store our figures in each record's 'measured'
    python -m benchmarks.parity --readme         # regenerate the README section from the records
    python -m benchmarks.parity --no-run         # the table from the stored figures only
    python -m benchmarks.parity --rescore        # stored figures, z recomputed against the records' references

Reference figures are not recomputed here: they were measured once by running the official code
outside this repository (each record names the repository, commit, command and adapter).
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

import solvers  # noqa: E402
from parity import records, runner, table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="substring of the record ids to run")
    ap.add_argument("--replicates", type=int, default=None, help="override our replicates (default: the record's)")
    ap.add_argument("--write", action="store_true", help="write our figures into the records ('measured')")
    ap.add_argument("--readme", action="store_true", help="regenerate the README parity section")
    ap.add_argument("--no-run", action="store_true", help="use the stored figures, run nothing")
    ap.add_argument("--rescore", action="store_true",
                    help="run nothing; recompute the stored z-scores against the current reference figures")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    recs = records.all_records(a.only)
    results = {}
    bad = []
    if a.rescore:
        for rec in recs:
            if rec.get("measured"):
                records.write_measured(rec, runner.rescore(rec, rec["measured"]))
        recs = records.all_records(a.only)
    elif not a.no_run:
        for rec in recs:
            res = runner.evaluate(rec, replicates=a.replicates)
            results[rec["id"]] = res
            zs = runner.agreement(rec, res)
            ok = rec["verdict"] == "REFERENCE-BUG" or all(abs(z) <= 3 for z in zs.values())
            if not ok:
                bad.append(rec["id"])
            print(f"{rec['id']}: {rec['verdict']} z={zs} ({res['seconds']} s)", file=sys.stderr)
            if a.write:
                records.write_measured(rec, res)
        if a.write:
            recs = records.all_records(a.only)
    md = table.markdown(recs, results or None, all_solvers=solvers.names() if not a.only else None)
    print(md)
    if a.readme:
        if not table.update_readme(os.path.join(ROOT, "README.md"), table.markdown(all_solvers=solvers.names())):
            print("README.md has no parity-table markers", file=sys.stderr)
            return 2
    if bad:
        print(f"|z| > 3 for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
