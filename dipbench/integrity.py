"""File integrity for inputs the benchmark does not make itself (dataset images, checkpoints).

Nothing is silently skipped: a missing, truncated or altered file raises ``IntegrityError`` whose
message names the file, what is wrong (missing / size / sha256 expected vs found) and the fix.

    from dipbench.integrity import verify_file, verify_manifest
    verify_file(path, sha256="ab12...", fix_hint="re-download with `snakemake prefetch --cores 1`")
    verify_manifest("data/manifests/ffhq256.sha256", root, fix_hint="...")   # `sha256sum` format

Hashing a multi-GB checkpoint in every job is wasteful: with ``cache=True`` a verified file gets
a stamp ``<file>.verified`` (sha256, size, mtime) beside it and is re-hashed only when its size
or mtime changed (a stamp that cannot be written is simply not used).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class IntegrityError(OSError):
    """A dataset file or checkpoint is missing, truncated or not the expected content."""


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_ok(path: Path, sha: str, st) -> bool:
    try:
        s = json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return False
    return s.get("sha256") == sha and s.get("size") == st.st_size and s.get("mtime_ns") == st.st_mtime_ns


def _write_stamp(path: Path, sha: str, st) -> None:
    try:
        _stamp_path(path).write_text(json.dumps(dict(sha256=sha, size=st.st_size, mtime_ns=st.st_mtime_ns)))
    except OSError:
        pass


def verify_file(path, sha256: str | None = None, fix_hint: str = "", size: int | None = None,
                cache: bool = False) -> Path:
    """Return ``Path(path)`` if it exists (and matches ``size``/``sha256`` when given); else raise
    IntegrityError naming the file, the problem and ``fix_hint``."""
    path = Path(path)
    fix = f" Fix: {fix_hint}" if fix_hint else ""
    if not path.is_file():
        raise IntegrityError(f"missing file: {path} does not exist.{fix}")
    st = path.stat()
    if size is not None and st.st_size != int(size):
        raise IntegrityError(f"corrupt file: {path} has {st.st_size} bytes, expected {int(size)} "
                             f"(truncated or a different file).{fix}")
    if sha256:
        want = sha256.lower().strip()
        if cache and _stamp_ok(path, want, st):
            return path
        got = sha256_file(path)
        if got != want:
            raise IntegrityError(f"corrupt file: {path} has sha256 {got}, expected {want} "
                                 f"({st.st_size} bytes; truncated, altered or a different version).{fix}")
        if cache:
            _write_stamp(path, want, st)
    return path


def read_manifest(manifest) -> dict[str, str]:
    """``sha256sum`` format (``<hex>  <relative path>``; '#' comments) -> {relative path: sha256}."""
    out = {}
    for n, line in enumerate(Path(manifest).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise IntegrityError(f"{manifest}:{n}: expected '<sha256>  <path>', got {line!r}")
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


def verify_manifest(manifest, root, fix_hint: str = "", only=None) -> list[Path]:
    """Verify every file of a sha256 manifest (or those in ``only``) under ``root``.

    All problems are collected and reported together (the first few named, with the count)."""
    entries = read_manifest(manifest)
    if only is not None:
        wanted = set(only)
        entries = {k: v for k, v in entries.items() if k in wanted or Path(k).stem in wanted}
    paths, problems = [], []
    for rel, sha in entries.items():
        try:
            paths.append(verify_file(Path(root) / rel, sha))
        except IntegrityError as e:
            problems.append(str(e))
    if problems:
        shown = "\n  ".join(problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        fix = f"\nFix: {fix_hint}" if fix_hint else ""
        raise IntegrityError(f"{len(problems)} of {len(entries)} files listed in {manifest} failed "
                             f"verification under {root}:\n  {shown}{more}{fix}")
    return paths


def write_manifest(manifest, root, files) -> None:
    """Write a ``sha256sum``-format manifest of ``files`` (paths relative to ``root``)."""
    lines = [f"{sha256_file(Path(root) / f)}  {Path(f).as_posix()}" for f in files]
    tmp = Path(str(manifest) + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, manifest)
