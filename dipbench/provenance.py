"""What a run.json records so every number traces back to its config, code and machine."""
from __future__ import annotations

import hashlib
import json
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata

from .paths import ROOT

PACKAGES = ("torch", "torchvision", "numpy", "scipy", "snakemake", "pandas", "scikit-image",
            "lpips", "clean-fid", "pyiqa")


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_state() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = run("rev-parse", "HEAD")
    dirty = bool(run("status", "--porcelain", "--untracked-files=no")) if commit else None
    return {"commit": commit or None, "dirty": dirty}


def package_versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def device_name(device) -> str:
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def scheduler() -> dict:
    """Batch-system job ids (slurm), so a run traces to its cluster job and log."""
    import os

    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_PARTITION",
            "SLURM_CLUSTER_NAME", "CUDA_VISIBLE_DEVICES")
    return {k.lower(): os.environ[k] for k in keys if k in os.environ}


def record(device) -> dict:
    import torch

    return {"git": git_state(), "packages": package_versions(), "python": platform.python_version(),
            "hostname": socket.gethostname(), "device": device_name(device),
            "torch_cuda": torch.version.cuda, "platform": platform.platform(), "scheduler": scheduler()}
