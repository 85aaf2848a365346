"""Logging for rule scripts: to the rule's log file and to stderr (progress visible live)."""
import sys


def logger(snakemake):
    path = snakemake.log[0] if len(snakemake.log) else None
    fh = open(path, "a") if path else None

    def log(msg):
        print(msg, file=sys.stderr, flush=True)
        if fh:
            fh.write(str(msg) + "\n")
            fh.flush()
    return log
