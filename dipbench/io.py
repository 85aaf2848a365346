"""Atomic writes: a killed job never leaves a half-written file that looks finished."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _atomic(path, writer, suffix=""):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    _atomic(path, w)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_npz(path, **arrays) -> None:
    _atomic(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")


def write_text(path, text: str) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    _atomic(path, w)


def write_csv(path, df) -> None:
    _atomic(path, lambda tmp: df.to_csv(tmp, index=False))


def save_png(path, img_chw) -> None:
    """float [-1, 1] CHW (or C=1) -> 8-bit PNG."""
    from PIL import Image

    a = np.asarray(img_chw, dtype=np.float32)
    a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
    a = np.clip(np.rint((a + 1) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    if a.shape[2] == 1:
        a = a[..., 0]
    _atomic(path, lambda tmp: Image.fromarray(a).save(tmp, format="PNG"), suffix=".png")
