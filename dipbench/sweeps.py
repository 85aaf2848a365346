"""Hyperparameter sweeps as config, and picking the best variant of a sweep for a table.

Config form (under ``solvers:``)::

    vml_map_nk:
      solver: vml_map                 # registry name; defaults to the entry's own name
      params: {lr_scale: 1.0}         # shared by every variant
      sweep:                          # either a mapping {param: [values...]} ...
        lr_scale: [0.5, 1.0]
      # ... or a list of parameter dicts, one variant each:
      # sweep: [{steps: 20, iters: 50}, {steps: 50, iters: 20}]

A mapping sweep is the Cartesian product of its lists, in the order written; a list item that
is itself a dict sets several parameters together (``{nk: [{steps: 20, iters: 50}, ...]}``
sweeps the pairs, not their product).  Every variant becomes its own solver entry

    {'solver': registry name, 'params': {**params, **variant}, 'sweep_of': base name}

named ``<base>--<param>=<value>--<param>=<value>`` with the variant's parameters in the order
written, e.g. ``vml_map--steps=50--iters=20``.  The characters used ([A-Za-z0-9_.+=-]) are safe
in file names and match the Snakefile's wildcard constraint for solvers; anything else in a
value is replaced by '_'.  Entries without ``sweep`` pass through with ``sweep_of: None``.
Other keys of an entry (e.g. ``label``) are carried over unchanged.

``best_of_sweep`` picks, per (dataset, task), the variant with the best mean metric over seeds
and relabels its rows with the sweep's base name, adding a ``variant`` column (the chosen
solver entry, for the table's footnote).  The paper grid of (N, K) for the MAP solvers is
``NK_GRID``.
"""
from __future__ import annotations

import itertools
import re
from typing import Iterable

NK_GRID = [(20, 50), (50, 20), (100, 10), (200, 5), (250, 4), (500, 2), (1000, 1)]
NK_SWEEP = [{"steps": n, "iters": k} for n, k in NK_GRID]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class SweepError(ValueError):
    pass


def _fmt(v) -> str:
    if isinstance(v, bool):
        s = str(v).lower()
    elif isinstance(v, float):
        s = format(v, "g")
    elif v is None:
        s = "none"
    else:
        s = str(v)
    return _UNSAFE.sub("_", s)


def variant_name(base: str, variant: dict) -> str:
    return base + "".join(f"--{k}={_fmt(v)}" for k, v in variant.items())


def _variants(name: str, sweep) -> list[dict]:
    if isinstance(sweep, (list, tuple)):
        out = []
        for i, item in enumerate(sweep):
            if not isinstance(item, dict) or not item:
                raise SweepError(f"solvers.{name}.sweep[{i}]: expected a non-empty mapping of parameters")
            out.append(dict(item))
        return out
    if isinstance(sweep, dict):
        groups = []
        for key, values in sweep.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise SweepError(f"solvers.{name}.sweep.{key}: expected a non-empty list of values")
            groups.append([dict(v) if isinstance(v, dict) else {key: v} for v in values])
        return [dict(itertools.chain.from_iterable(d.items() for d in combo))
                for combo in itertools.product(*groups)]
    raise SweepError(f"solvers.{name}.sweep: expected a mapping or a list, got {type(sweep).__name__}")


def swept_params(sweep, name: str = "?") -> set:
    """Names of the parameters a ``sweep`` value sets (empty for None)."""
    if sweep is None:
        return set()
    return {k for v in _variants(name, sweep) for k in v}


def expand_solvers(solvers_cfg: dict) -> dict:
    """{entry name: {...}} from the config's ``solvers`` mapping, sweeps expanded (see module doc)."""
    out: dict = {}
    for name, entry in (solvers_cfg or {}).items():
        entry = dict(entry or {})
        sweep = entry.pop("sweep", None)
        base = {"solver": entry.pop("solver", name), "params": dict(entry.pop("params", None) or {})}
        extra = entry
        if sweep is None:
            out[name] = {**extra, **base, "sweep_of": None}
            continue
        variants = _variants(name, sweep)
        for v in variants:
            vname = variant_name(name, v)
            if vname in out or vname in solvers_cfg:
                raise SweepError(f"solvers.{name}.sweep: variant name '{vname}' is not unique")
            out[vname] = {**extra, "solver": base["solver"], "params": {**base["params"], **v},
                          "sweep_of": name}
    return out


def best_of_sweep(df, metric: str, higher_is_better: bool, by: Iterable[str] = ("dataset", "task"),
                  solver_col: str = "solver", sweep_col: str = "sweep_of"):
    """Per group of ``by``, keep the best variant (mean of ``metric`` over seeds) of each sweep.

    Rows whose ``sweep_of`` is empty pass through (``variant`` = their solver name).  The kept
    rows of a sweep get ``solver`` = the sweep's base name and ``variant`` = the chosen entry.
    Ties go to the variant listed first (order of appearance in ``df``).
    """
    import pandas as pd

    by = list(by)
    df = df.copy()
    swept = df[sweep_col].notna() & (df[sweep_col].astype(str) != "") if sweep_col in df else \
        pd.Series(False, index=df.index)
    plain = df[~swept].copy()
    plain["variant"] = plain[solver_col]
    parts = [plain]
    sw = df[swept]
    if len(sw):
        means = (sw.groupby(by + [sweep_col, solver_col], sort=False, dropna=False)[metric]
                 .mean().reset_index())
        means = means[means[metric].notna()]
        order = means.sort_values(metric, ascending=not higher_is_better, kind="stable")
        best = order.drop_duplicates(by + [sweep_col], keep="first")
        keep = sw.merge(best[by + [sweep_col, solver_col]], on=by + [sweep_col, solver_col], how="inner")
        keep["variant"] = keep[solver_col]
        keep[solver_col] = keep[sweep_col]
        parts.append(keep)
    return pd.concat(parts, ignore_index=True)
