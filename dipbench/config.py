"""Configuration: defaults, expansion of solver entries, and validation that names every bad key.

Validation runs when the Snakefile is parsed, so a bad config fails before any job starts.
Types and ranges are checked by the JSON schema (workflow/schemas/config.schema.yaml, through
snakemake.utils.validate); names against the registries and solver/operator compatibility here.
"""
from __future__ import annotations

import inspect
import math

from .paths import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def solver_entries(cfg) -> dict:
    """{result name: {'solver': registry name, 'params': {...}, 'sweep_of': base name or None}}."""
    try:
        from .sweeps import expand_solvers
    except ImportError:  # sweeps are optional
        expand_solvers = None
    raw = cfg.get("solvers", {}) or {}
    if expand_solvers is not None:
        return expand_solvers(raw)
    return {k: {"solver": (v or {}).get("solver", k), "params": dict((v or {}).get("params", {}) or {}),
                "sweep_of": None} for k, v in raw.items()}


def task_entry(cfg, task: str) -> dict:
    t = cfg["tasks"][task] or {}
    return {"operator": t.get("operator", task), "params": dict(t.get("params", {}) or {}),
            "sigma_y": float(t.get("sigma_y", 0.0))}


def dataset_entry(cfg, dataset: str) -> dict:
    d = cfg["datasets"][dataset] or {}
    prior = d.get("prior", {}) or {}
    return {"images": d.get("images", dataset), "params": dict(d.get("params", {}) or {}),
            "n_images": d.get("n_images"), "prior": {"name": prior.get("name"),
                                                     "params": dict(prior.get("params", {}) or {})}}


def accepts(fn, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def check_names(cfg) -> None:
    """Registry names, parameter names and solver/operator compatibility; raises ConfigError."""
    import data
    import metrics
    import operators
    import priors
    import solvers
    from .registry import UnknownName

    errors = []

    def lookup(reg_get, key, name):
        try:
            return reg_get(name)
        except UnknownName as e:
            errors.append(f"{key}: {e}")
            return None

    for ds in cfg.get("datasets", {}):
        e = dataset_entry(cfg, ds)
        lookup(data.DATASETS.get, f"datasets.{ds}.images", e["images"])
        if e["prior"]["name"] is None:
            errors.append(f"datasets.{ds}.prior.name: missing; choices: {', '.join(priors.names())}")
        else:
            lookup(priors.PRIORS.get, f"datasets.{ds}.prior.name", e["prior"]["name"])
    ops = {}
    for t in cfg.get("tasks", {}):
        e = task_entry(cfg, t)
        if e["sigma_y"] < 0:
            errors.append(f"tasks.{t}.sigma_y: must be >= 0, got {e['sigma_y']}")
        if lookup(operators.OPERATORS.get, f"tasks.{t}.operator", e["operator"]) is not None:
            ops[t] = e
    for name, e in solver_entries(cfg).items():
        cls = lookup(solvers.SOLVERS.get, f"solvers.{name}.solver", e["solver"])
        if cls is None:
            continue
        unknown = set(e["params"]) - set(cls.defaults)
        if unknown:
            errors.append(f"solvers.{name}.params: unknown parameter(s) {', '.join(sorted(unknown))}"
                          f" for solver '{e['solver']}'; parameters: {', '.join(sorted(cls.defaults))}")
        for t, te in ops.items():
            for ds in cfg.get("datasets", {}):
                shape = _dataset_shape(cfg, ds)
                if shape is None:
                    continue
                try:
                    op, _ = build_operator(te, shape, seed=0)
                except Exception as exc:  # noqa: BLE001 - report any construction error by key
                    errors.append(f"tasks.{t}: cannot build operator '{te['operator']}' for dataset "
                                  f"'{ds}' of shape {shape}: {exc}")
                    continue
                lacking = set(cls.needs) - set(op.provides)
                if lacking:
                    errors.append(f"solvers.{name} x tasks.{t}: solver '{e['solver']}' needs "
                                  f"{', '.join(sorted(lacking))} but operator '{te['operator']}' "
                                  f"provides only {', '.join(sorted(op.provides))}")
    for m in cfg.get("metrics", []):
        lookup(metrics.METRICS.get, "metrics", m)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(errors)))


def _dataset_shape(cfg, ds):
    import data

    e = dataset_entry(cfg, ds)
    try:
        return tuple(data.build(e["images"], **e["params"]).shape)
    except Exception:  # noqa: BLE001 - a dataset that cannot be opened is reported when it is loaded
        return None


def build_operator(task: dict, shape, seed: int):
    """Build a task's operator; randomised operators (masks, kernels) get the derived seed."""
    import operators

    params = dict(task["params"])
    if accepts(operators.get(task["operator"]), "seed") and "seed" not in params:
        params["seed"] = seed
    return operators.build(task["operator"], shape, **params), params


def validate(cfg: dict) -> dict:
    """Schema (types, ranges) then names; returns cfg with schema defaults filled in."""
    from snakemake.utils import validate as sm_validate

    try:
        sm_validate(cfg, str(SCHEMA), set_default=True)
    except Exception as e:  # snakemake wraps jsonschema's error; keep its message (it names the key)
        raise ConfigError(f"invalid config: {e}") from None
    check_names(cfg)
    return cfg
