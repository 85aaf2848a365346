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


# ---------------------------------------------------------------------------- solver-entry features
# Keys of a solver entry beside `solver`, `params`, `sweep`, `label` (config/paper/*.yaml use them to
# run the papers' protocols; each is validated in check_names, naming the key):
#   tasks:       [task, ...]      run this entry only on these tasks (default: every task)
#   sigma_y:     0.0              the noise level the solver is TOLD (the measurement keeps its task's
#                                 sigma_y); run.json records both, the tables footnote the rows
#   per_task:    {task: {param: value}}   parameter overrides for one task (after `params`; a swept
#                                 parameter cannot be overridden per task)
#   project:     true             post-step x <- x - A^+(A x - y) (dipbench/projection.py)
#   best_of:     {k: 4, by: psnr} ORACLE: k runs, per image the best by the ground-truth metric `by`
#   oracle_init: {sigma: 0.5}     ORACLE: the solver starts from x_sigma = x0 + sigma*eta written by
#                                 the measure step; only for solver classes with accepts_init = True
# Oracle options use the ground truth: they are recorded in run.json (`oracle`) and footnoted in
# every table that shows the row.
ENTRY_FEATURES = ("tasks", "sigma_y", "per_task", "project", "best_of", "oracle_init")


def entry_runs_on(entry: dict, task: str) -> bool:
    tasks = entry.get("tasks")
    return tasks is None or task in tasks


def planned_runs(cfg) -> list[tuple]:
    """(dataset, task, solver entry, seed) of every run the grid plans: the cross product, minus the
    tasks an entry's `tasks:` list leaves out, plus the runs on the tuning split (tuning_runs)."""
    entries = solver_entries(cfg)
    return [(d, t, s, int(k)) for d in cfg["datasets"] for t in cfg["tasks"] for s, e in entries.items()
            if entry_runs_on(e, t) for k in cfg["seeds"]] + tuning_runs(cfg)


def solver_entry(cfg, solver: str, task: str) -> dict:
    """The entry one run uses: ``params`` with the task's ``per_task`` overrides merged in, and the
    feature keys that are set (absent ones are left out, so an entry without them hashes as before)."""
    e = dict(solver_entries(cfg)[solver])
    over = dict(((e.get("per_task") or {}).get(task)) or {})
    e["params"] = {**e["params"], **over}
    e.pop("per_task", None)
    e.pop("tasks", None)
    if e.get("best_of") and e["best_of"].get("tasks") is not None:  # best_of limited to some tasks
        e["best_of"] = ({k: v for k, v in e["best_of"].items() if k != "tasks"}
                        if task in e["best_of"]["tasks"] else None)
    return {k: v for k, v in e.items() if v is not None or k in ("sweep_of",)}


def oracle_sigmas(cfg) -> list[float]:
    """The noise levels of every `oracle_init` in the config (the measure step writes x_sigma for each)."""
    out = {float(e["oracle_init"]["sigma"]) for e in solver_entries(cfg).values() if e.get("oracle_init")}
    return sorted(out)


def oracle_key(sigma: float) -> str:
    """Name of x_sigma = x0 + sigma * eta in measurement.npz."""
    return f"oracle_x_sigma_{float(sigma):g}"


def measure_spec(cfg, dataset: str, task: str) -> dict:
    """The measure rule's params (a change re-runs the measurement): the dataset and task entries and,
    only when some solver asks for an oracle initialisation, its noise levels."""
    spec = dict(dataset=dataset_entry(cfg, dataset), task=task_entry(cfg, task))
    sig = oracle_sigmas(cfg)
    if sig:
        spec["oracle_init"] = sig
    return spec


def oracle_notes(entry: dict) -> list[str]:
    """Human-readable oracle options of a resolved entry (run.json `oracle`, table footnotes)."""
    notes = []
    if entry.get("best_of"):
        b = entry["best_of"]
        notes.append(f"best of {int(b['k'])} runs per image by {b.get('by', 'psnr')} against the ground truth")
    if entry.get("oracle_init"):
        notes.append(f"initialised from the ground truth: x_sigma = x0 + {float(entry['oracle_init']['sigma']):g}"
                     f" * eta (sigma = {float(entry['oracle_init']['sigma']):g})")
    return notes


def _feature_errors(cfg, name: str, e: dict, cls, ops: dict) -> list[str]:
    """Errors of the solver-entry feature keys of entry ``name`` (resolved by solver_entries)."""
    import metrics

    errs = []
    key = f"solvers.{e.get('sweep_of') or name}"
    tasks = list(cfg.get("tasks", {}) or {})
    if e.get("tasks") is not None:
        bad = [t for t in e["tasks"] if t not in tasks]
        if bad:
            errs.append(f"{key}.tasks: no task(s) {', '.join(map(str, bad))} in this config; tasks: {', '.join(tasks)}")
        if not e["tasks"]:
            errs.append(f"{key}.tasks: empty list (the entry would never run); remove the entry or name tasks")
    if e.get("sigma_y") is not None:
        v = e["sigma_y"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            errs.append(f"{key}.sigma_y: must be a finite number >= 0 (the sigma_y the solver is told), got {v!r}")
    per_task = e.get("per_task") or {}
    if not isinstance(per_task, dict):
        errs.append(f"{key}.per_task: expected a mapping {{task: {{param: value}}}}, got {type(per_task).__name__}")
        per_task = {}
    from .sweeps import swept_params

    swept = swept_params((cfg["solvers"].get(e.get("sweep_of") or name) or {}).get("sweep"), name)
    for t, over in per_task.items():
        if t not in tasks:
            errs.append(f"{key}.per_task.{t}: no task '{t}' in this config; tasks: {', '.join(tasks)}")
            continue
        if not isinstance(over, dict):
            errs.append(f"{key}.per_task.{t}: expected a mapping of parameters, got {type(over).__name__}")
            continue
        unknown = set(over) - set(cls.defaults)
        if unknown:
            errs.append(f"{key}.per_task.{t}: unknown parameter(s) {', '.join(sorted(unknown))} for solver "
                        f"'{e['solver']}'; parameters: {', '.join(sorted(cls.defaults))}")
        clash = sorted(set(over) & swept)
        if clash:
            errs.append(f"{key}.per_task.{t}: {', '.join(clash)} is swept (`sweep:`); a swept parameter "
                        f"cannot also be set per task")
        errs += _param_type_errors(f"{key}.per_task.{t}", over, cls.defaults)
    run_tasks = [t for t in tasks if entry_runs_on(e, t)]
    if e.get("project"):
        for (t, ds), op in ops.items():
            if t in run_tasks and "svd" not in op.provides and not ("adjoint" in op.provides and op.linear):
                errs.append(f"{key}.project: operator '{task_entry(cfg, t)['operator']}' (task {t}) has no "
                            f"pseudo-inverse (it provides {', '.join(sorted(op.provides))}); the projection "
                            f"x <- x - A^+(Ax - y) needs an SVD or a linear operator with an adjoint: "
                            f"restrict the entry with `tasks:` or drop `project`")
    if e.get("best_of"):
        b = e["best_of"]
        k, by = b.get("k"), b.get("by", "psnr")
        bad = [t for t in (b.get("tasks") or []) if t not in tasks]
        if bad:
            errs.append(f"{key}.best_of.tasks: no task(s) {', '.join(map(str, bad))} in this config")
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            errs.append(f"{key}.best_of.k: must be an integer >= 2 (runs per image), got {k!r}")
        try:
            m = metrics.METRICS.get(by)
            if getattr(m, "kind", "per_image") != "per_image":
                errs.append(f"{key}.best_of.by: metric '{by}' is computed per set, not per image; use a "
                            f"per-image metric (e.g. psnr, lpips_vgg)")
        except Exception as exc:  # noqa: BLE001 - unknown metric name
            errs.append(f"{key}.best_of.by: {exc}")
    if e.get("oracle_init"):
        sig = e["oracle_init"].get("sigma")
        if isinstance(sig, bool) or not isinstance(sig, (int, float)) or not math.isfinite(sig) or sig <= 0:
            errs.append(f"{key}.oracle_init.sigma: must be a finite number > 0, got {sig!r}")
        if not getattr(cls, "accepts_init", False):
            import solvers

            able = [n for n in solvers.names() if getattr(solvers.get(n), "accepts_init", False)]
            errs.append(f"{key}.oracle_init: solver '{e['solver']}' does not accept an initialisation (its class "
                        f"does not set accepts_init = True, so it would ignore x_sigma); remove oracle_init or use "
                        f"a solver that does ({', '.join(able) or 'none registered'})")
    return errs


def task_entry(cfg, task: str) -> dict:
    t = cfg["tasks"][task] or {}
    return {"operator": t.get("operator", task), "params": dict(t.get("params", {}) or {}),
            "sigma_y": float(t.get("sigma_y", 0.0))}


def dataset_entry(cfg, dataset: str) -> dict:
    if dataset not in cfg["datasets"] and split_of(dataset)[1] == "tune":
        return tuning_entry(cfg, dataset)  # `<dataset>.tune`: the tuning split (below)
    d = cfg["datasets"][dataset] or {}
    prior = d.get("prior", {}) or {}
    out = {"images": d.get("images", dataset), "params": dict(d.get("params", {}) or {}),
           "n_images": d.get("n_images"), "prior": {"name": prior.get("name"),
                                                    "params": dict(prior.get("params", {}) or {})}}
    if d.get("shape") is not None:  # only when given: keeps existing content hashes unchanged
        out["shape"] = [int(v) for v in d["shape"]]
    if d.get("consistency") is not None:  # likewise: only datasets that name a consistency model
        cm = d["consistency"] or {}
        out["consistency"] = {"name": cm.get("name"), "params": dict(cm.get("params", {}) or {})}
    if d.get("subset_seed") is not None:  # only when given (likewise): a seeded random n_images
        out["subset_seed"] = int(d["subset_seed"])
    return out


def prior_has_consistency(builder) -> bool:
    """Whether a prior builder makes objects with their own ``consistency`` map (the exact
    Gaussian priors), read from the class it returns (its return annotation), never by building."""
    import typing

    if isinstance(builder, type):
        return callable(getattr(builder, "consistency", None))
    try:
        ret = typing.get_type_hints(builder).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotation: unknown, so no
        return False
    return isinstance(ret, type) and callable(getattr(ret, "consistency", None))


def _consistency_errors(cfg, solvers_mod, priors_mod) -> list[str]:
    """A solver that needs a consistency map (class attribute ``needs_consistency``) on a dataset
    whose prior has none and that names no `consistency` model: one error per pair, naming both keys."""
    from .registry import UnknownName

    errors = []
    need = []
    for name, e in solver_entries(cfg).items():
        try:
            cls = solvers_mod.SOLVERS.get(e["solver"])
        except UnknownName:
            continue
        if getattr(cls, "needs_consistency", False):
            need.append((name, e["solver"]))
    for ds in cfg.get("datasets", {}) or {}:
        de = dataset_entry(cfg, ds)
        cm = de.get("consistency")
        if cm is not None:
            if cm["name"] is None:
                errors.append(f"datasets.{ds}.consistency.name: missing; choices: {', '.join(priors_mod.names())}")
            elif cm["name"] not in priors_mod.PRIORS:
                errors.append(f"datasets.{ds}.consistency.name: unknown prior '{cm['name']}'; "
                              f"choices: {', '.join(priors_mod.names())}")
            continue
        pname = de["prior"]["name"]
        if pname is None or pname not in priors_mod.PRIORS or not need:
            continue
        if prior_has_consistency(priors_mod.PRIORS.get(pname)):
            continue
        for sname, reg in need:
            errors.append(f"solvers.{sname} x datasets.{ds}: solver '{reg}' needs a consistency model, "
                          f"but datasets.{ds}.prior '{pname}' has none; add "
                          f"`datasets.{ds}.consistency: {{name: ...}}` (e.g. cm_imagenet64) or use the "
                          f"denoiser variant ({reg.replace('map_ga', 'map_ga_d', 1)})")
    return errors


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
        errors += _feature_errors(cfg, name, e, cls, ops)
        for (t, ds), op in ops.items():
            if not entry_runs_on(e, t):
                continue
            lacking = set(cls.needs) - set(op.provides)
            if lacking:
                errors.append(f"solvers.{name} x tasks.{t}: solver '{e['solver']}' needs "
                              f"{', '.join(sorted(lacking))} but operator '{task_entry(cfg, t)['operator']}' "
                              f"provides only {', '.join(sorted(op.provides))}")
    for m in cfg.get("metrics", []):
        lookup(metrics.METRICS.get, "metrics", m)
    errors += _consistency_errors(cfg, solvers, priors)
    errors += tuning_errors(cfg)
    if cfg.get("paper_grid") and not errors:
        errors += grid_spec_errors(cfg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(dict.fromkeys(errors)))


def grid_spec_errors(cfg) -> list[str]:
    """A paper grid (`paper_grid: <name>`) must fill every table spec that names it (`grid:`): every
    task, solver and dataset such a spec's layout asks for must be in this config (report/specs.py)."""
    try:
        from report.specs import load_specs, spec_grid_errors
    except ImportError as exc:  # the report package is part of the repository
        return [f"paper_grid: cannot load the table specs ({exc})"]
    specs, source = load_specs(cfg)
    return [f"paper_grid {cfg['paper_grid']!r} vs {source}: {m}" for m in spec_grid_errors(specs, cfg)]


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
    from .inputs import data_errors  # image counts against the dataset, before any job

    errors = data_errors(cfg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
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


def solve_resources(cfg, dataset: str, attempt: int = 1, task: str | None = None, solver: str | None = None) -> dict:
    """Resources of one solve job (dataset x task x solver x seed, all images), grown per retry.
    runtime: the config's `runtime` when given; else, with task and solver known, the cost estimate
    (dipbench/estimate.py: measured network time x counted calls x `runtime_safety`) where the prior
    has a measured row for the device; else the size-class formula below."""
    shape = dataset_shape(cfg, dataset) or (3, 256, 256)
    pixels = math.prod(shape)
    mem, spi = next((m, s) for lim, m, s in _SIZE_CLASSES if pixels <= lim)
    over = dict((cfg.get("resources") or {}).get("solve") or {})
    n = dataset_entry(cfg, dataset)["n_images"] or 1000
    spi = float(over.get("seconds_per_image", spi))
    est = None
    if "runtime" not in over and "seconds_per_image" not in over and task is not None and solver is not None:
        from .estimate import runtime_minutes

        est = runtime_minutes(cfg, dataset, task, solver)
    runtime = est or int(over.get("runtime", max(30, math.ceil(1.5 * n * spi / 60))))
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


# ---------------------------------------------------------------------------- tuning split
# A swept solver (`sweep:`, dipbench/sweeps.py) has several variants; the table shows one per task.
# Which one is chosen on images that are not reported: every dataset has a tuning split, disjoint
# from its test images, and the variant with the best mean score there is the one reported on the
# test images (config `selection: tune`, the default).  `selection: test` chooses on the test
# images themselves, the way the papers report their (N, K) and step-count searches.
#
# The tuning split is a dataset of its own in the DAG, named `<dataset>.tune`: its measurements,
# runs and scores live beside the test ones (results/measurements/<dataset>.tune/...,
# results/runs/<dataset>.tune/...), with the same rules, the same seeds and the same prior, so every
# tuning score is traceable to its run.json like a test score, and a test run's content hash is the
# same as without a tuning split (adding or changing one re-runs only tuning jobs).  Only the swept
# entries run on it (the others have nothing to choose).  Its images, declared per dataset:
#   datasets.<d>.tuning: {n_images: M}   the M images that follow the test images in the dataset's
#                                        order (with `subset_seed`: the next M of the same seeded
#                                        draw); M defaults to the test set's n_images
#   datasets.<d>.tuning: {ids: [...]}    an explicit list of image ids (checked disjoint from the test)
TUNE_SUFFIX = ".tune"
SELECTIONS = ("tune", "test")


def selection(cfg) -> str:
    """The sweep-selection protocol of a config: 'tune' (default) or 'test' (the papers' protocol)."""
    return str(cfg.get("selection") or "tune")


def split_of(dataset: str) -> tuple[str, str]:
    """('skimage32_gauss', 'tune') for 'skimage32_gauss.tune'; (name, 'test') otherwise."""
    if str(dataset).endswith(TUNE_SUFFIX):
        return str(dataset)[: -len(TUNE_SUFFIX)], "tune"
    return str(dataset), "test"


def tuning_name(dataset: str) -> str:
    return f"{dataset}{TUNE_SUFFIX}"


def tuning_declaration(cfg, dataset: str) -> dict:
    """The tuning split of a (test) dataset entry: {'ids': [...]} or {'n_images': M}."""
    d = cfg["datasets"][dataset] or {}
    t = dict(d.get("tuning") or {})
    if t.get("ids") is not None:
        return {"ids": [str(i) for i in t["ids"]]}
    m = t.get("n_images") or d.get("n_images")
    return {"n_images": None if m is None else int(m)}


def tuning_entry(cfg, name: str) -> dict:
    """dataset_entry of `<dataset>.tune`: the test entry (images, params, prior, ...) with ``split``
    saying which images ({'name': 'tune', 'test_n': the test set's n_images, and 'ids' or
    'n_images'}) and ``n_images`` the tuning split's size."""
    base, _ = split_of(name)
    if base not in cfg["datasets"]:
        raise KeyError(f"{name}: no dataset '{base}' in the config (a '{TUNE_SUFFIX}' name is the "
                       f"tuning split of a dataset entry)")
    e = dataset_entry(cfg, base)
    decl = tuning_declaration(cfg, base)
    e["split"] = dict(name="tune", test_n=e["n_images"], **decl)
    e["n_images"] = len(decl["ids"]) if "ids" in decl else decl["n_images"]
    return e


def swept_entries(cfg) -> list[str]:
    return [s for s, e in solver_entries(cfg).items() if e.get("sweep_of")]


def tuning_runs(cfg) -> list[tuple]:
    """The runs on the tuning split: every swept entry (sweep variant) on `<dataset>.tune`, with the
    test runs' tasks and seeds; none when `selection: test` or when nothing is swept."""
    if selection(cfg) != "tune":
        return []
    entries = solver_entries(cfg)
    swept = [s for s, e in entries.items() if e.get("sweep_of")]
    return [(tuning_name(d), t, s, int(k)) for d in cfg["datasets"] for t in cfg["tasks"] for s in swept
            if entry_runs_on(entries[s], t) for k in cfg["seeds"]]


def split_ids(entry: dict, all_ids, dataset: str) -> list[str]:
    """The image ids of a tuning-split entry (tuning_entry), given the dataset's ordered ids;
    raises ValueError naming the key when the split would overlap the test images or not fit."""
    base, _ = split_of(dataset)
    all_ids = [str(i) for i in all_ids]
    sp = entry["split"]
    n_test = len(all_ids) if sp["test_n"] is None else int(sp["test_n"])
    seed = entry.get("subset_seed")
    if seed is not None:  # the test images are the first n of a seeded permutation: continue it
        import torch

        from .seeding import generator

        perm = torch.randperm(len(all_ids), generator=generator(entry["images"], "subset", seed)).tolist()
        order = [all_ids[i] for i in perm]
    else:
        order = all_ids
    test = set(order[:n_test])
    if "ids" in sp:
        overlap = sorted(set(sp["ids"]) & test)
        if overlap:
            raise ValueError(f"datasets.{base}.tuning.ids: {len(overlap)} id(s) are test images too "
                             f"({', '.join(overlap[:5])}{' ...' if len(overlap) > 5 else ''}); the tuning "
                             f"split must be disjoint from the test images")
        return list(sp["ids"])
    if sp["test_n"] is None:
        raise ValueError(f"datasets.{base}: every image is a test image (n_images is not set), so none is "
                         f"left for the tuning split; set datasets.{base}.n_images, or declare "
                         f"datasets.{base}.tuning: {{ids: [...]}}, or use `selection: test`")
    m = int(sp["n_images"])
    if n_test + m > len(order):
        raise ValueError(f"datasets.{base}: the tuning split needs {m} images after the {n_test} test images, "
                         f"the dataset has {len(order)}; lower datasets.{base}.tuning.n_images or "
                         f"datasets.{base}.n_images, or declare datasets.{base}.tuning: {{ids: [...]}}")
    pick = order[n_test: n_test + m]
    if seed is not None:  # kept in dataset order, as the test subset is (pipeline.random_subset)
        rank = {i: k for k, i in enumerate(all_ids)}
        pick = sorted(pick, key=rank.__getitem__)
    return pick


def tuning_errors(cfg) -> list[str]:
    """The tuning splits the config needs (selection `tune` and some swept entry): each must be
    declared so that it fits in the dataset and misses every test image.  Datasets whose ids cannot be
    listed without their files (a paper dataset not present here) are checked by the measure job."""
    errs = []
    sel = cfg.get("selection")
    if sel is not None and str(sel) not in SELECTIONS:
        errs.append(f"selection: '{sel}' is not one of {', '.join(SELECTIONS)} (tune: choose a sweep's "
                    f"variant on the tuning split; test: on the test images, the papers' protocol)")
        return errs
    for ds in cfg.get("datasets", {}) or {}:
        if split_of(ds)[1] == "tune":
            errs.append(f"datasets.{ds}: names ending in '{TUNE_SUFFIX}' are reserved for tuning splits")
    if selection(cfg) != "tune" or not swept_entries(cfg):
        return errs
    import data

    for ds in cfg.get("datasets", {}) or {}:
        e = tuning_entry(cfg, tuning_name(ds))
        if "ids" not in e["split"] and e["split"]["test_n"] is None:
            errs.append(f"datasets.{ds}: every image is a test image (n_images is not set), so none is left "
                        f"for the tuning split of the swept solvers ({', '.join(swept_entries(cfg)[:3])}"
                        f"{' ...' if len(swept_entries(cfg)) > 3 else ''}); set datasets.{ds}.n_images, "
                        f"or declare datasets.{ds}.tuning: {{ids: [...]}}, or use `selection: test`")
            continue
        try:
            ids = data.build(e["images"], **e["params"]).ids
        except Exception:  # noqa: BLE001 - no files here (paper datasets): the measure job checks
            continue
        try:
            split_ids(e, ids, tuning_name(ds))
        except ValueError as exc:
            errs.append(str(exc))
    return errs
