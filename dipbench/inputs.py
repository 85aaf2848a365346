"""The files a result depends on, read from the config and the registries without building anything.

* ``checkpoint_files(cfg, dataset)``: the checkpoint file(s) of the dataset's prior and of its
  consistency model (a prior's ``path`` param, else the registry entry priors/checkpoints.yaml
  names for it) -- never loaded here.
* ``image_files(cfg, dataset)``: the dataset's image list (ids picked by ``n_images`` /
  ``subset_seed``) and, for folder datasets, the file of each id under the resolved root (the
  ``root`` param or the environment variable it falls back to).
* ``fingerprint``: path, size and modification time of each such file (cheap: one ``stat`` per
  file).  The measure and solve rules carry it in their params, so swapping a checkpoint or a
  data folder (or an image in it) makes Snakemake plan the affected jobs again.
* ``provenance``: what run.json / meta.json record: every checkpoint's sha256 (hashed once per
  path/size/mtime, cached under dipbench.paths.cache_dir()) and a sha256 of the image list.
* ``prior_is_exact`` / ``prior_wants_labels``: read from the prior builder's declared return class
  and its signature, so the measure step never instantiates a network.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import typing
from pathlib import Path

from . import config as C


# ---------------------------------------------------------------------------- priors (metadata only)
def _builder(name):
    import priors

    try:
        return priors.PRIORS.get(name)
    except Exception:  # noqa: BLE001 - unknown names are reported by config validation
        return None


def _returns(builder):
    if builder is None:
        return None
    if isinstance(builder, type):
        return builder
    try:
        ret = typing.get_type_hints(builder).get("return")
    except Exception:  # noqa: BLE001 - an unresolvable annotation: unknown
        return None
    return ret if isinstance(ret, type) else None


def prior_is_exact(cfg, dataset: str) -> bool:
    """Whether the dataset's prior is an analytic one (class attribute ``exact``), from the builder's
    declared return class: a network prior is never built to find out."""
    cls = _returns(_builder(C.dataset_entry(cfg, dataset)["prior"]["name"]))
    return bool(getattr(cls, "exact", False))


def _label_param(entry: dict):
    b = _builder(entry["name"])
    if b is None:
        return None
    try:
        p = inspect.signature(b).parameters.get("class_label")
    except (TypeError, ValueError):
        return None
    if p is None:
        return None
    v = entry["params"].get("class_label", p.default)
    if isinstance(v, str) and v.strip().lower() == "true":
        return True
    return v


def prior_wants_labels(cfg, dataset: str) -> bool:
    """Whether the dataset's prior (or its consistency model) takes each image's class
    (``class_label: true``, the param or the builder's default)."""
    e = C.dataset_entry(cfg, dataset)
    return any(_label_param(p) is True for p in (e["prior"], e.get("consistency")) if p)


# ---------------------------------------------------------------------------- checkpoint files
def _registry_file(entry: dict):
    from dipbench.prefetch import checkpoint_path, load_registry

    reg = load_registry()
    key = entry["params"].get("checkpoint")
    if key in reg:
        return checkpoint_path(key, registry=reg)
    if entry["name"] in reg:
        return checkpoint_path(entry["name"], registry=reg)
    mine = [k for k, v in reg.items() if v.get("prior") == entry["name"]]
    pick = [k for k in mine if reg[k].get("default")] or mine
    return checkpoint_path(pick[0], registry=reg) if len(pick) == 1 else None


def _entry_files(entry: dict) -> list[Path]:
    params = entry["params"]
    for key in ("path", "weights"):
        if params.get(key):
            return [Path(str(params[key])).expanduser()]
    if entry["name"] == "edm_unet":  # the committed default weights (priors/edm_unet.py)
        try:
            from priors.edm_unet import DEFAULT_WEIGHTS

            return [Path(DEFAULT_WEIGHTS)]
        except ImportError:
            return []
    try:
        f = _registry_file(entry)
    except Exception:  # noqa: BLE001 - no registry: no checkpoint to name
        f = None
    return [f] if f is not None else []


def checkpoint_files(cfg, dataset: str) -> list[Path]:
    """Checkpoint file(s) the dataset's prior (and consistency model) loads; [] for analytic priors."""
    e = C.dataset_entry(cfg, dataset)
    out = []
    for entry in (e["prior"], e.get("consistency")):
        if entry and entry.get("name"):
            out += _entry_files(entry)
    return [Path(os.path.abspath(p)) for p in out]


# ---------------------------------------------------------------------------- images
def _dataset(cfg, dataset: str):
    import data

    e = C.dataset_entry(cfg, dataset)
    return data.build(e["images"], **e["params"])


def selected_ids(cfg, dataset: str, ds=None) -> list[str]:
    """The ids the measure step uses (n_images, subset_seed), without reading pixels."""
    from .pipeline import dataset_ids

    e = C.dataset_entry(cfg, dataset)
    ds = ds if ds is not None else _dataset(cfg, dataset)
    return dataset_ids(e, ds, dataset)


def image_files(cfg, dataset: str):
    """(root or None, ids, {id: path or None}) of the images the measure step reads."""
    ds = _dataset(cfg, dataset)
    ids = selected_ids(cfg, dataset, ds)
    root = getattr(ds, "root", None)
    paths = {i: (ds.path(i) if hasattr(ds, "path") else None) for i in ids}
    return (str(Path(root).resolve()) if root is not None else None), ids, paths


def ids_digest(ids) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


# ---------------------------------------------------------------------------- fingerprints
def stat_of(path) -> dict:
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return {"path": str(p), "missing": True}
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _env_key() -> str:
    return json.dumps({k: v for k, v in os.environ.items() if k.startswith("DIPBENCH_")}, sort_keys=True)


@functools.lru_cache(maxsize=256)
def _data_fp(entry_json: str, env: str, dataset: str) -> str:
    # the raw entry of the dataset (of its test dataset for a `<dataset>.tune` split)
    cfg = {"datasets": {C.split_of(dataset)[0]: json.loads(entry_json)}}
    try:
        root, ids, paths = image_files(cfg, dataset)
    except Exception as e:  # noqa: BLE001 - the measure job reports it with the fix
        return json.dumps({"error": f"{type(e).__name__}: {str(e)[:200]}"})
    h = hashlib.sha256()
    for i in ids:
        p = paths[i]
        h.update(json.dumps([i, stat_of(p) if p is not None else None], sort_keys=True).encode())
    return json.dumps({"root": root, "n": len(ids), "ids_sha256": ids_digest(ids)[:16],
                       "files": h.hexdigest()[:16]}, sort_keys=True)


def _raw_entry(cfg, dataset: str) -> str:
    base = dataset if dataset in cfg["datasets"] else C.split_of(dataset)[0]   # `<d>.tune` -> `<d>`
    return json.dumps(cfg["datasets"][base] or {}, sort_keys=True, default=str)


def data_fingerprint(cfg, dataset: str) -> dict:
    """Root, image-list digest and a digest of every image file's (path, size, mtime): the measure
    rule's ``inputs`` param.  Cached per process (one stat per image per Snakemake invocation)."""
    return json.loads(_data_fp(_raw_entry(cfg, dataset), _env_key(), dataset))


def checkpoint_fingerprint(cfg, dataset: str) -> list[dict]:
    """(path, size, mtime) of each checkpoint the dataset's prior loads: the solve rule's ``inputs``."""
    return [stat_of(p) for p in checkpoint_files(cfg, dataset)]


# ---------------------------------------------------------------------------- digests (run.json)
def _digest_cache() -> Path:
    from .paths import cache_dir

    return cache_dir() / "checkpoint_sha256.json"


def file_sha256(path) -> str | None:
    """sha256 of ``path``, hashed once per (path, size, mtime) and remembered in the cache dir."""
    from .integrity import sha256_file

    st = stat_of(path)
    if st.get("missing"):
        return None
    key = f"{st['path']}|{st['size']}|{st['mtime_ns']}"
    cache = _digest_cache()
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    digest = sha256_file(path)
    try:  # best effort: a cache that cannot be written only costs a re-hash next time
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        known[key] = digest
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=0, sort_keys=True))
        os.replace(tmp, cache)
    except OSError:
        pass
    return digest


def checkpoint_provenance(cfg, dataset: str) -> list[dict]:
    """For run.json: each checkpoint's path, size, mtime and sha256."""
    out = []
    for p in checkpoint_files(cfg, dataset):
        rec = stat_of(p)
        if not rec.get("missing"):
            rec["sha256"] = file_sha256(p)
        out.append(rec)
    return out


def image_provenance(cfg, dataset: str, ids) -> dict:
    """For meta.json / run.json: the data root, the number of images and the image list's sha256."""
    rec = {"n": len(ids), "ids_sha256": ids_digest(ids)}
    try:
        rec["root"] = image_files(cfg, dataset)[0]
    except Exception:  # noqa: BLE001
        rec["root"] = None
    fp = data_fingerprint(cfg, dataset)
    if "files" in fp:
        rec["files_sha256"] = fp["files"]
    return rec


# ---------------------------------------------------------------------------- checks before any job
def data_errors(cfg) -> list[str]:
    """Image counts against the dataset, where the dataset can be listed cheaply (its ids come from
    a manifest or a folder listing; no pixel is read): a request beyond the dataset is an error of
    the config, caught before any job touches an output.  Datasets that cannot be built here (no
    root yet: paper grids validate before the data is in place) are left to the measure job."""
    errors = []
    for ds in cfg.get("datasets", {}) or {}:
        e = C.dataset_entry(cfg, ds)
        try:
            obj = _dataset(cfg, ds)
            n_have = len(obj.ids)
        except Exception:  # noqa: BLE001, S112 - not listable here: the measure job says why
            continue
        n = e.get("n_images")
        if n is not None and int(n) > n_have:
            errors.append(f"datasets.{ds}.n_images: {int(n)} images requested, the dataset "
                          f"('{e['images']}') has {n_have}; lower n_images (or give the dataset more "
                          f"images: its `ids_file` / `n` params)")
    return errors
