"""Check config files before a run: ``python -m dipbench.check_config FILE [FILE ...]``.

Snakemake parses ``--configfile`` itself, before any of the workflow's code runs, and on a YAML
syntax error says only "Config file is not valid JSON or YAML" (snakemake 9.27,
snakemake/common/configfile.py), naming neither the file nor the line.  This command says where:
``FILE:LINE:COLUMN: <what the YAML parser expected>`` and then runs the same validation as the
Snakefile (``dipbench.config.validate``: unknown keys, names, parameter types), so a config can
be checked without starting Snakemake.  Exit status 0 when every file is valid, 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that cannot be read or parsed; the message names the file and the place."""


def load(path) -> dict:
    """The file's mapping; a syntax error names the file, line and column (1-based)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigFileError(f"{p}: cannot read: {e.strerror or e}") from e
    try:
        cfg = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
        what = e.problem or str(e)
        if e.context and e.context_mark is not None and e.context_mark is not mark:
            what += f" ({e.context} that starts at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
        raise ConfigFileError(f"{where}: YAML syntax error: {what}") from e
    except yaml.YAMLError as e:
        raise ConfigFileError(f"{p}: YAML error: {e}") from e
    if not isinstance(cfg, dict):
        raise ConfigFileError(f"{p}: expected a mapping of config keys at the top level, "
                              f"got {type(cfg).__name__}")
    return cfg


def check(path) -> str | None:
    """None when the file parses and validates, else the message."""
    from dipbench import config as C

    try:
        C.validate(load(path))
    except Exception as e:  # noqa: BLE001 - report any validation failure with the file's name
        msg = str(e)
        return msg if str(path) in msg else f"{path}: {msg}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dipbench.check_config", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    bad = 0
    for f in ap.parse_args(argv).files:
        msg = check(f)
        print(f"{f}: ok" if msg is None else msg, file=sys.stdout if msg is None else sys.stderr)
        bad += msg is not None
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
