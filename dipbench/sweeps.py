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

Selection protocol (which variant a table reports).  ``choose_variants`` picks, per (dataset,
task) and sweep, the variant with the best mean metric over seeds in the frame it is given, and
``apply_choice`` keeps those variants' rows of another frame, relabelled with the sweep's base
name and a ``variant`` column (the chosen solver entry, for the table's footnote).
``select_variants`` runs the protocol of the config key ``selection``:

* ``tune`` (default): the choice is made on the tuning split's runs (``<dataset>.tune``, images
  disjoint from the test images, dipbench/config.py) and applied to the test runs: the reported
  number never took part in choosing;
* ``test``: the choice is made on the test runs themselves (best of sweep on the reported images,
  the way the papers report their searches; optimistic by construction).

``best_of_sweep`` is the ``test`` protocol on one frame.  The paper grid of (N, K) for the MAP
solvers is ``NK_GRID``.
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


def _swept(df, sweep_col="sweep_of"):
    import pandas as pd

    if sweep_col not in df:
        return pd.Series(False, index=df.index)
    return df[sweep_col].notna() & (df[sweep_col].astype(str) != "")


def choose_variants(df, metric: str, higher_is_better: bool, by: Iterable[str] = ("dataset", "task"),
                    solver_col: str = "solver", sweep_col: str = "sweep_of"):
    """Per group of ``by`` and sweep: the variant with the best mean ``metric`` over the frame's rows
    (seeds).  Returns a frame with columns ``by``, ``sweep_of``, ``variant``, ``score`` (its mean),
    ``runs`` (rows averaged).  Only the rows given are read; ties go to the variant listed first."""
    import pandas as pd

    by = list(by)
    sw = df[_swept(df, sweep_col)]
    cols = by + [sweep_col, "variant", "score", "runs"]
    if sw.empty:
        return pd.DataFrame(columns=cols)
    vals = pd.to_numeric(sw[metric], errors="coerce") if metric in sw else pd.Series(float("nan"), index=sw.index)
    g = sw.assign(_v=vals).groupby(by + [sweep_col, solver_col], sort=False, dropna=False)["_v"]
    means = g.mean().reset_index().rename(columns={"_v": "score", solver_col: "variant"})
    means["runs"] = g.count().values
    means = means[means["score"].notna()]
    best = means.sort_values("score", ascending=not higher_is_better, kind="stable")
    return best.drop_duplicates(by + [sweep_col], keep="first")[cols].reset_index(drop=True)


def apply_choice(df, choice, by: Iterable[str] = ("dataset", "task"), solver_col: str = "solver",
                 sweep_col: str = "sweep_of"):
    """``df`` with every sweep reduced to its chosen variant per group (``choice`` from
    choose_variants): kept rows get ``solver`` = the sweep's base name and ``variant`` = the entry;
    unswept rows pass through (``variant`` = their solver).  A sweep without a choice for a group
    (no score to choose by) has no row there."""
    import pandas as pd

    by = list(by)
    swept = _swept(df, sweep_col)
    plain = df[~swept].copy()
    plain["variant"] = plain[solver_col]
    sw = df[swept]
    if sw.empty:
        return plain.reset_index(drop=True)
    chosen = {tuple(map(str, r)) for r in choice[by + [sweep_col, "variant"]].itertuples(index=False)}
    keys = sw[by + [sweep_col, solver_col]].astype(str).itertuples(index=False)
    keep = sw[[tuple(k) in chosen for k in keys]].copy()
    keep["variant"] = keep[solver_col]
    keep[solver_col] = keep[sweep_col]
    return pd.concat([plain, keep]).sort_index().reset_index(drop=True)


def select_variants(test, tune, metric: str, higher_is_better: bool, selection: str = "tune",
                    by: Iterable[str] = ("dataset", "task")):
    """(test rows with each sweep reduced to its chosen variant, choice frame).  ``selection``
    'tune': chosen on ``tune`` (the tuning split's rows, ``dataset`` named as in ``test``) and
    nothing of ``test`` but its row keys is read; 'test': chosen on ``test``."""
    if selection not in ("tune", "test"):
        raise SweepError(f"selection must be 'tune' or 'test', got {selection!r}")
    if selection == "tune":
        import pandas as pd

        src = tune if tune is not None else pd.DataFrame(columns=list(test.columns))
    else:
        src = test
    choice = choose_variants(src, metric, higher_is_better, by=by)
    return apply_choice(test, choice, by=by), choice


def best_of_sweep(df, metric: str, higher_is_better: bool, by: Iterable[str] = ("dataset", "task"),
                  solver_col: str = "solver", sweep_col: str = "sweep_of"):
    """Per group of ``by``, keep the best variant (mean of ``metric`` over seeds) of each sweep,
    chosen on ``df`` itself (the ``test`` protocol, see the module doc).

    Rows whose ``sweep_of`` is empty pass through (``variant`` = their solver name).  The kept
    rows of a sweep get ``solver`` = the sweep's base name and ``variant`` = the chosen entry.
    Ties go to the variant listed first (order of appearance in ``df``).
    """
    choice = choose_variants(df, metric, higher_is_better, by=by, solver_col=solver_col, sweep_col=sweep_col)
    return apply_choice(df, choice, by=by, solver_col=solver_col, sweep_col=sweep_col)
