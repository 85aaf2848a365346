"""Parity records: one YAML file per solver x problem under ``parity/records/``.

Fields (all required unless marked optional):
  solver, problem            registered names (``solvers``, ``parity.problems``)
  verdict                    PARITY | DEVIATES | REFERENCE-BUG | PENDING
  summary                    one line for the table
  statistics                 names in ``parity.stats`` (their definitions are generated)
  ours: {params, batch, replicates}
                             our configuration (solver params) and Monte-Carlo protocol
  reproduce: {params, why}   DEVIATES only: the flag(s) that reproduce the reference
  bug: {statistic, threshold, what, direction (optional: above | below)}
                             REFERENCE-BUG only: on ``statistic`` (measured against the exact answer)
                             the reference's figure is beyond ``threshold`` and ours is not
                             (direction 'above': ref > threshold > ours; 'below': the reverse)
  reference: {repo, commit, files, command, adapter, batch, replicates,
              figures: {stat: {value, se}}}
                             measured once by running the official code outside this repository;
                             optional ``patched: {patch, replicates, figures}``: the same run with
                             the reference's defect repaired (REFERENCE-BUG), which ours must match
  mapping: [{reference, ours}]   hyper-parameters: reference default -> our config
  pending                    PENDING only: why the comparison is incomplete (e.g. our side not yet run
                             at the record's size); such a record is not counted as agreeing, and its
                             test checks it as PARITY
  slow (optional)            true: the test runs behind @pytest.mark.slow (full paper configurations)
  measured (optional)        our side as last written by ``python -m benchmarks.parity --write``
  notes (optional)
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

RECORD_DIR = Path(__file__).resolve().parent / "records"
VERDICTS = ("PARITY", "DEVIATES", "REFERENCE-BUG", "PENDING")
REQUIRED = ("solver", "problem", "verdict", "summary", "statistics", "ours", "reference", "mapping")


class RecordError(ValueError):
    pass


def _check(rec: dict, path: Path) -> dict:
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise RecordError(f"{path}: missing field(s) {', '.join(missing)}")
    if rec["verdict"] not in VERDICTS:
        raise RecordError(f"{path}: verdict must be one of {', '.join(VERDICTS)}, got {rec['verdict']!r}")
    if rec["verdict"] == "DEVIATES" and "reproduce" not in rec:
        raise RecordError(f"{path}: a DEVIATES record needs 'reproduce: {{params, why}}' (the flag that "
                          "reproduces the reference)")
    if rec["verdict"] == "REFERENCE-BUG" and "bug" not in rec:
        raise RecordError(f"{path}: a REFERENCE-BUG record needs 'bug: {{statistic, threshold, what}}'")
    if rec["verdict"] == "PENDING" and not rec.get("pending"):
        raise RecordError(f"{path}: a PENDING record needs 'pending: <why the comparison is incomplete>'")
    ref = rec["reference"]
    for k in ("repo", "commit", "command", "adapter"):
        if k not in ref:
            raise RecordError(f"{path}: reference.{k} is missing")
    figs = ref.get("figures") or {}
    for s in rec["statistics"]:
        if s not in figs or "value" not in figs[s] or "se" not in figs[s]:
            raise RecordError(f"{path}: reference.figures.{s} needs value and se")
    for k in ("params", "batch", "replicates"):
        if k not in rec["ours"]:
            raise RecordError(f"{path}: ours.{k} is missing")
    rec["id"] = path.stem
    rec["path"] = str(path)
    return rec


def load(path) -> dict:
    path = Path(path)
    with open(path) as f:
        rec = yaml.safe_load(f)
    if not isinstance(rec, dict):
        raise RecordError(f"{path}: not a YAML mapping")
    return _check(rec, path)


def all_records(pattern: str | None = None) -> list:
    """All records, or those whose id contains ``pattern`` (only that one where an id equals it)."""
    paths = sorted(RECORD_DIR.glob("*.yaml"))
    if pattern and any(p.stem == pattern for p in paths):
        paths = [p for p in paths if p.stem == pattern]
    out = []
    for p in paths:
        if pattern and pattern not in p.stem:
            continue
        out.append(load(p))
    return out


def zscore(a: dict, b: dict) -> float:
    """(a - b) / sqrt(se_a^2 + se_b^2) for {value, se} figures."""
    den = math.sqrt(float(a["se"]) ** 2 + float(b["se"]) ** 2)
    diff = float(a["value"]) - float(b["value"])
    return diff / den if den > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))


def write_measured(rec: dict, measured: dict) -> None:
    """Replace the ``measured`` block of a record file, keeping the rest of the text unchanged."""
    path = Path(rec["path"])
    text = path.read_text()
    marker = "\nmeasured:"
    if marker in text:
        head, tail = text.split(marker, 1)
        # the block ends at the next top-level key
        lines = tail.split("\n")
        rest = []
        for i, ln in enumerate(lines[1:], 1):
            if ln and not ln.startswith(" ") and not ln.startswith("#"):
                rest = lines[i:]
                break
        text = head.rstrip("\n") + "\n" + ("\n".join(rest) if rest else "")
    block = yaml.safe_dump({"measured": measured}, sort_keys=False, default_flow_style=None, width=100)
    text = text.rstrip("\n") + "\n" + block
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
