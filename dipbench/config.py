"""Configuration: defaults, expansion of solver entries, and validation that names every bad key.

Validation runs when the Snakefile is parsed, so a bad config fails before any job starts.
Types and ranges are checked by the JSON schema (workflow/schemas/config.schema.yaml, through
snakemake.utils.validate); names against the registries and solver/operator compatibility here.
"""
from __future__ import annotations

import inspect
import math
import re

from .paths import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


# Names become path components and Snakemake wildcards (Snakefile wildcard_constraints).
NAME_RE = {"datasets": re.compile(r"^[A-Za-z0-9_.+-]+$"), "tasks": re.compile(r"^[A-Za-z0-9_.+-]+$"),
           "solvers": re.compile(r"^[A-Za-z0-9_.+=-]+$")}


def import_plugins(cfg) -> list[str]:
    """Import the modules named in config ``plugins`` (extra registrations: solvers, operators, ...).

    They must be importable (installed or on PYTHONPATH) on the submitting machine and on every
    compute node; the names are part of the config, so a run records which plugins it used."""
    import importlib

    done = []
    for name in cfg.get("plugins", []) or []:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"invalid config:\n  plugins: cannot import '{name}': {e} "
                              f"(install it or add its folder to PYTHONPATH)") from None
        done.append(name)
    return done


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
    out = {"images": d.get("images", dataset), "params": dict(d.get("params", {}) or {}),
           "n_images": d.get("n_images"), "prior": {"name": prior.get("name"),
                                                    "params": dict(prior.get("params", {}) or {})}}
    if d.get("shape") is not None:  # only when given: keeps existing content hashes unchanged
        out["shape"] = [int(v) for v in d["shape"]]
    return out


def accepts(fn, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def _param_type_errors(key, given: dict, defaults: dict) -> list[str]:
    """A value whose type cannot be the default's (int for a float is fine; None default: any)."""
    errs = []
    for k, v in given.items():
        d = defaults.get(k)
        if d is None or v is None:
            continue
        if isinstance(d, bool):
            ok = isinstance(v, bool)
        elif isinstance(d, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(d, float):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif isinstance(d, str):
            ok = isinstance(v, str)
        elif isinstance(d, (list, tuple)):
            ok = isinstance(v, (list, tuple))
        else:
            ok = True
        if not ok:
            errs.append(f"{key}.{k}: expected {type(d).__name__} like the default {d!r}, "
                        f"got {type(v).__name__} {v!r}")
        elif isinstance(v, float) and not math.isfinite(v):
            errs.append(f"{key}.{k}: must be finite, got {v!r}")
    return errs


def check_names(cfg) -> None:
    """Registry names, parameter names/types and solver/operator compatibility; raises ConfigError.

    Never loads an image or a checkpoint: dataset shapes come from the entry's ``shape`` or from
    the dataset object's ``shape`` (built from its manifest, no pixels read)."""
    import_plugins(cfg)
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

    for axis, rx in NAME_RE.items():
        for name in cfg.get(axis, {}) or {}:
            if not rx.match(str(name)):
                errors.append(f"{axis}.{name}: name must match {rx.pattern} (it becomes a path and a wildcard)")
    seeds = cfg.get("seeds", []) or []
    if len(set(map(str, seeds))) != len(seeds):
        errors.append(f"seeds: duplicates in {seeds}")

    shapes = {}
    for ds in cfg.get("datasets", {}):
        e = dataset_entry(cfg, ds)
        if lookup(data.DATASETS.get, f"datasets.{ds}.images", e["images"]) is not None:
            shape, why = _dataset_shape(cfg, ds)
            if shape is None:
                errors.append(f"datasets.{ds}: cannot determine the image shape without loading images "
                              f"({why}); add `shape: [C, H, W]` to the entry or fix the dataset params")
            else:
                shapes[ds] = shape
        if e["prior"]["name"] is None:
            errors.append(f"datasets.{ds}.prior.name: missing; choices: {', '.join(priors.names())}")
        else:
            lookup(priors.PRIORS.get, f"datasets.{ds}.prior.name", e["prior"]["name"])
    ops = {}  # (task, dataset) -> operator, built once (not once per solver)
    built = {}  # (operator, params, shape) -> operator: datasets of one shape share their builds
    for t in cfg.get("tasks", {}):
        e = task_entry(cfg, t)
        if not math.isfinite(e["sigma_y"]) or e["sigma_y"] < 0:
            errors.append(f"tasks.{t}.sigma_y: must be >= 0, got {e['sigma_y']}")
        if lookup(operators.OPERATORS.get, f"tasks.{t}.operator", e["operator"]) is None:
            continue
        for ds, shape in shapes.items():
            key = (e["operator"], repr(sorted(e["params"].items())), shape)
            try:
                if key not in built:
                    built[key], _ = build_operator(e, shape, seed=0)
                ops[t, ds] = built[key]
            except Exception as exc:  # noqa: BLE001 - report any construction error by key
                errors.append(f"tasks.{t}: cannot build operator '{e['operator']}' for dataset "
                              f"'{ds}' of shape {shape}: {type(exc).__name__}: {exc}")
    for name, e in solver_entries(cfg).items():
        cls = lookup(solvers.SOLVERS.get, f"solvers.{name}.solver", e["solver"])
        if cls is None:
            continue
        unknown = set(e["params"]) - set(cls.defaults)
        if unknown:
            errors.append(f"solvers.{name}.params: unknown parameter(s) {', '.join(sorted(unknown))}"
                          f" for solver '{e['solver']}'; parameters: {', '.join(sorted(cls.defaults))}")
        errors += _param_type_errors(f"solvers.{name}.params", e["params"], cls.defaults)
        for (t, ds), op in ops.items():
            lacking = set(cls.needs) - set(op.provides)
            if lacking:
                errors.append(f"solvers.{name} x tasks.{t}: solver '{e['solver']}' needs "
                              f"{', '.join(sorted(lacking))} but operator '{task_entry(cfg, t)['operator']}' "
                              f"provides only {', '.join(sorted(op.provides))}")
    for m in cfg.get("metrics", []):
        lookup(metrics.METRICS.get, "metrics", m)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(errors)))


def _dataset_shape(cfg, ds):
    """(shape, None) or (None, reason).  The entry's ``shape`` wins (no file is touched); otherwise
    the dataset object is built (manifest/ids only: loaders read pixels in ``load``, never here)."""
    import data

    e = dataset_entry(cfg, ds)
    if e.get("shape"):
        return tuple(e["shape"]), None
    try:
        return tuple(data.build(e["images"], **e["params"]).shape), None
    except Exception as exc:  # noqa: BLE001 - reported by check_names, naming the dataset key
        return None, f"{type(exc).__name__}: {exc}"


def dataset_shape(cfg, ds):
    """The image shape of a dataset entry, without loading pixels (None if unknown)."""
    return _dataset_shape(cfg, ds)[0]


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


# ---------------------------------------------------------------------------- resources
# Rough per-image solve cost at ~1000 NFE with a VJP per step (batch 16), by image size, used only
# to size cluster requests (runtime); measured/assumed: 3x32x32 on CPU ~20 s, 64x64 ADM/EDM on one
# A100 ~5 s, 256x256 ADM ~40 s.  Override with config `resources: {solve: {...}}` or the profile.
_SIZE_CLASSES = (  # (max pixels C*H*W, host mem_mb, seconds per image)
    (3 * 32 * 32, 4000, 20.0),
    (3 * 64 * 64, 16000, 5.0),
    (3 * 256 * 256, 32000, 40.0),
    (float("inf"), 64000, 160.0),
)


def solve_resources(cfg, dataset: str, attempt: int = 1) -> dict:
    """Resources of one solve job (dataset x task x solver x seed, all images), grown per retry."""
    shape = dataset_shape(cfg, dataset) or (3, 256, 256)
    pixels = math.prod(shape)
    mem, spi = next((m, s) for lim, m, s in _SIZE_CLASSES if pixels <= lim)
    over = dict((cfg.get("resources") or {}).get("solve") or {})
    n = dataset_entry(cfg, dataset)["n_images"] or 1000
    spi = float(over.get("seconds_per_image", spi))
    runtime = int(over.get("runtime", max(30, math.ceil(1.5 * n * spi / 60))))
    gpu = int(over.get("gpu", 0 if str(cfg.get("device", "auto")) == "cpu" else 1))
    return dict(mem_mb=int(over.get("mem_mb", mem)) * attempt, runtime=runtime * attempt, gpu=gpu)


def solve_bundle(cfg, dataset: str) -> str:
    """How a cluster run submits this dataset's jobs (groups: workflow/rules/common.smk):
    "cell" -- one submission per dataset x task x seed running its measure, every solver's solve
    and every score in series (images up to 3x32x32: seconds of solving per job, where a
    submission of its own costs more than the work); "run" -- one submission per solve with its
    score (larger images), measures bundled apart."""
    shape = dataset_shape(cfg, dataset) or (3, 256, 256)
    return "cell" if math.prod(shape) <= _SIZE_CLASSES[0][0] else "run"


def rule_resources(cfg, rule: str, attempt: int = 1, mem_mb: int = 4000, runtime: int = 20) -> dict:
    """CPU rules (measure, score, aggregate, report): defaults, config overrides, grown per retry."""
    over = dict((cfg.get("resources") or {}).get(rule) or {})
    return dict(mem_mb=int(over.get("mem_mb", mem_mb)) * attempt, runtime=int(over.get("runtime", runtime)) * attempt)
