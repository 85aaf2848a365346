"""Fetch the checkpoints a config needs, once, on a machine with internet.

    python -m dipbench.prefetch --configfile config/paper/ffhq.yaml [--root DIR] [--only NAME ...]
    python -m dipbench.prefetch --list

Known checkpoints (name, file, url, sha256 or null = unknown) are listed in
``priors/checkpoints.yaml``.  A config needs the checkpoints whose ``prior`` is named by one of
its ``datasets.*.prior.name`` entries, plus any listed under ``prefetch: {checkpoints: [...]}``.
Files go to ``<root>/checkpoints/<file>`` with ``root`` = ``--root`` or ``prefetch.root`` in the
config or ``dipbench.paths.resources_dir()`` ($DIPBENCH_RESOURCES).

* present and (digest unknown, or digest matches): nothing is done;
* present with a wrong digest: error (the file is named; delete it and rerun);
* missing: downloaded to ``<file>.part``, hashed while streaming, checked, then renamed
  atomically; a failed check removes the partial file and raises ``ChecksumError``.

Compute jobs never download: loaders call ``require_checkpoint(name)``, which only looks and,
when the file is absent, fails naming the file, the expected path and the prefetch command.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from .integrity import sha256_file  # noqa: F401 - also part of this module's API
from .paths import ROOT, resources_dir

REGISTRY = ROOT / "priors" / "checkpoints.yaml"
PREFETCH_CMD = "python -m dipbench.prefetch --configfile <your config>  (or: snakemake prefetch --cores 1)"


class MissingCheckpoint(FileNotFoundError):
    pass


class ChecksumError(RuntimeError):
    pass


def load_registry(path=None) -> dict:
    import yaml

    with open(path or REGISTRY) as f:
        doc = yaml.safe_load(f) or {}
    entries = doc.get("checkpoints", {}) or {}
    for name, e in entries.items():
        for key in ("file", "url", "sha256"):
            if key not in e:
                raise ValueError(f"{path or REGISTRY}: checkpoint {name!r} lacks {key!r} (use null if unknown)")
    return entries


def checkpoint_dir(root=None) -> Path:
    return Path(root) / "checkpoints" if root is not None else resources_dir() / "checkpoints"


def checkpoint_path(name: str, root=None, registry=None) -> Path:
    reg = registry if registry is not None else load_registry()
    if name not in reg:
        raise KeyError(f"unknown checkpoint {name!r}; known: {', '.join(sorted(reg))}")
    return checkpoint_dir(root) / reg[name]["file"]


def require_checkpoint(name: str, root=None, registry=None) -> Path:
    """The local path of checkpoint ``name``; never downloads.  Missing -> MissingCheckpoint."""
    path = checkpoint_path(name, root, registry)
    if not path.exists():
        raise MissingCheckpoint(
            f"checkpoint {name!r} ({path.name}) is not available: expected at {path}. "
            f"Fetch it on a machine with internet with `{PREFETCH_CMD}` (into $DIPBENCH_RESOURCES "
            f"or --root), or pass the prior a `path` param; compute jobs never download.")
    return path


def fetch_one(name: str, entry: dict, root=None, timeout: float = 60.0, log=print) -> Path:
    """Make checkpoint ``name`` present and verified under ``root``; return its path."""
    dest = checkpoint_dir(root) / entry["file"]
    want = (entry.get("sha256") or "").lower() or None
    if dest.exists():
        if entry.get("archive_member"):
            log(f"{name}: present at {dest} (extracted from an archive; its digest was checked at download)")
            return dest
        if want is None:
            log(f"{name}: present at {dest} (sha256 unknown in the registry; not verified)")
            return dest
        got = sha256_file(dest)
        if got != want:
            raise ChecksumError(f"{name}: {dest} is present but its sha256 is {got}, expected {want}; "
                                f"delete it and rerun `{PREFETCH_CMD}`")
        log(f"{name}: present at {dest}, sha256 ok")
        return dest
    url = entry.get("url")
    if not url:
        raise MissingCheckpoint(
            f"{name}: {entry['file']} has no direct download URL; get it from {entry.get('page', '?')} "
            f"and place it at {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    n = 0
    log(f"{name}: downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                h.update(b)
                f.write(b)
                n += len(b)
    except BaseException:
        if part.exists():
            part.unlink()
        raise
    got = h.hexdigest()
    if want is not None and got != want:
        part.unlink()
        raise ChecksumError(f"{name}: downloaded {url} ({n} bytes) has sha256 {got}, expected {want}; "
                            f"the partial file was removed, nothing was written to {dest}")
    member = entry.get("archive_member")
    if member:
        import zipfile

        tmp = dest.with_name(dest.name + ".extract")
        try:
            with zipfile.ZipFile(part) as z:
                names = [i for i in z.namelist() if i == member or i.endswith("/" + member)]
                if not names:
                    raise MissingCheckpoint(f"{name}: archive from {url} has no member {member!r}")
                with z.open(names[0]) as src, open(tmp, "wb") as f:
                    while True:
                        b = src.read(1 << 20)
                        if not b:
                            break
                        f.write(b)
            os.replace(tmp, dest)
        finally:
            part.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
    else:
        os.replace(part, dest)
    if want is None:
        log(f"{name}: {n} bytes, sha256 {got} (UNKNOWN in priors/checkpoints.yaml: record it there)")
    else:
        log(f"{name}: {n} bytes, sha256 ok")
    return dest


def needed(config: dict, registry: dict) -> list[str]:
    """Checkpoint names a workflow config needs (its datasets' priors and consistency models, the
    networks of its tasks' operators, plus prefetch.checkpoints).  A prior whose params name a
    ``checkpoint`` needs that entry; otherwise its entries, except those marked ``default: false``
    (the alternatives of a multi-file prior)."""
    names = []
    for d in (config.get("datasets") or {}).values():
        for key in ("prior", "consistency"):
            spec = (d or {}).get(key) or {}
            ck = (spec.get("params") or {}).get("checkpoint")
            if ck is not None and ck in registry and registry[ck].get("prior") == spec.get("name"):
                names.append(ck)
            elif spec.get("name"):
                names += [n for n, e in registry.items()
                          if e.get("prior") == spec["name"] and e.get("default", True) is not False]
    ops_used = {(t or {}).get("operator") for t in (config.get("tasks") or {}).values()}
    names += [n for n, e in registry.items() if e.get("operator") and e["operator"] in ops_used]
    extra = list(((config.get("prefetch") or {}).get("checkpoints")) or [])
    for n in extra:
        if n not in registry:
            raise KeyError(f"prefetch.checkpoints: unknown checkpoint {n!r}; known: {', '.join(sorted(registry))}")
    return sorted(set(names) | set(extra))


def prefetch(config: dict, root=None, only=None, registry=None, timeout: float = 60.0, log=print) -> list[Path]:
    reg = registry if registry is not None else load_registry()
    root = root if root is not None else (config.get("prefetch") or {}).get("root")
    names = list(only) if only else needed(config, reg)
    if not names:
        log("prefetch: this config needs no checkpoints")
    paths, errors = [], []
    for n in names:                       # fetch what can be fetched; report every failure at the end
        try:
            paths.append(fetch_one(n, reg[n], root, timeout, log))
        except (MissingCheckpoint, ChecksumError) as e:
            log(f"{n}: FAILED: {e}")
            errors.append(e)
    if errors:
        cls = ChecksumError if any(isinstance(e, ChecksumError) for e in errors) else MissingCheckpoint
        raise cls("; ".join(str(e) for e in errors))
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Download the checkpoints a config needs (sha256-checked).")
    p.add_argument("--configfile", help="workflow config (YAML)")
    p.add_argument("--root", help="resources root (default: prefetch.root or $DIPBENCH_RESOURCES)")
    p.add_argument("--only", nargs="*", help="fetch just these checkpoint names")
    p.add_argument("--list", action="store_true", help="list known checkpoints and exit")
    p.add_argument("--registry", help="checkpoint registry YAML (default priors/checkpoints.yaml)")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--stamp", help="write this file when done (Snakemake output)")
    a = p.parse_args(argv)
    reg = load_registry(a.registry)
    if a.list:
        for n, e in sorted(reg.items()):
            print(f"{n:20s} {e['file']:36s} sha256={e['sha256'] or 'UNKNOWN'} url={e['url'] or '(manual)'}")
        return 0
    cfg = {}
    if a.configfile:
        import yaml

        with open(a.configfile) as f:
            cfg = yaml.safe_load(f) or {}
    elif not a.only:
        p.error("give --configfile or --only")
    try:
        paths = prefetch(cfg, a.root, a.only, reg, a.timeout, log=lambda m: print(m, flush=True))
    except (MissingCheckpoint, ChecksumError, KeyError) as e:
        print(f"prefetch failed: {e}", file=sys.stderr)
        return 1
    if a.stamp:
        Path(a.stamp).parent.mkdir(parents=True, exist_ok=True)
        Path(a.stamp).write_text("".join(f"{q}\n" for q in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
