"""The first image prior: a Gaussian fitted to 32x32 crops of the embedded train split.

mean and covariance of ``n_crops`` random crops (data.skimage32.train_crops), plus ``shrinkage``*I
so every direction keeps some variance.  The eigendecomposition is cached on disk (float32) under
dipbench.paths.cache_dir(), keyed by the parameters, so jobs load it instead of refitting.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np
import torch

from dipbench.paths import cache_dir
from .gaussian import GaussianPrior
from .registry import register


def fit_moments(n_crops: int, seed: int):
    from data.skimage32 import train_crops

    crops = train_crops(n_crops, seed=seed).astype(np.float64) / 127.5 - 1.0
    flat = torch.from_numpy(crops.transpose(0, 3, 1, 2).reshape(n_crops, -1))
    mean = flat.mean(0)
    centred = flat - mean
    cov = centred.T @ centred / (n_crops - 1)
    return mean, cov


@register("gaussian_fit")
def gaussian_fit(dataset: str = "skimage32", n_crops: int = 20000, seed: int = 0,
                 shrinkage: float = 1e-4) -> GaussianPrior:
    if dataset != "skimage32":
        raise ValueError(f"gaussian_fit: only the embedded 'skimage32' train split is supported, got {dataset!r}")
    key = json.dumps(dict(dataset=dataset, n_crops=n_crops, seed=seed, shrinkage=shrinkage), sort_keys=True)
    path = cache_dir() / f"gaussian_fit_{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    shape = (3, 32, 32)
    if path.exists():
        z = np.load(path)
        return GaussianPrior.from_eig(z["mean"], z["lam"], z["Q"], shape)
    mean, cov = fit_moments(n_crops, seed)
    cov = cov + shrinkage * torch.eye(cov.shape[0], dtype=torch.float64)
    lam, q = torch.linalg.eigh(cov)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez(tmp, mean=mean.float().numpy(), lam=lam.float().numpy(), Q=q.float().numpy(), key=key)
    os.replace(tmp, path)                   # atomic: a killed fit leaves no half file
    return GaussianPrior.from_eig(mean.float(), lam.float(), q.float(), shape)
