"""The DDIM time grid of latent-diffusion code bases (CompVis ``ldm/models/diffusion/ddim.py``, which PSLD
and ReSample build on), as VE noise levels.

LDM's DDIM with S steps on a T = 1000 step model uses the timesteps t_i = c i + 1, c = T // S
(i = 0 .. S-1; when c = 1 the indices are t_i = i, PSLD's fix for t = 1000), and steps from t_i to the
"previous" level t_{i-1}, where the previous level of the first index is the model's first level
t = 0 -- not a clean sample: the sampler stops at abar_0 (sigma_0 = 0.039 for the FFHQ / CelebA-HQ
LDMs), and the latent decoded there is the output.

The noise levels come from the prior's own VP table when it has one (``den.table``: sigma_t for
t = 0 .. T-1, as ``priors/ldm.py`` provides), otherwise from LDM's "linear" beta schedule
beta_t = (linspace(sqrt(linear_start), sqrt(linear_end), T))^2 -- 0.0015 and 0.0195 in the FFHQ and
CelebA-HQ LDM configurations, the defaults here.
"""
from __future__ import annotations

import torch


def ldm_table(den, linear_start: float = 0.0015, linear_end: float = 0.0195, t_steps: int = 1000):
    """sigma_t (float64, t = 0 .. T-1) of the latent model's VP schedule."""
    table = getattr(den, "table", None)
    if table is not None:
        return torch.as_tensor(table, dtype=torch.float64)
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, t_steps, dtype=torch.float64) ** 2
    ab = torch.cumprod(1 - betas, 0)
    return ((1 - ab) / ab).sqrt()


def ldm_ddim_pairs(steps: int, den, linear_start: float = 0.0015, linear_end: float = 0.0195):
    """[(sigma_t, sigma_prev)] for LDM's DDIM with ``steps`` steps, from the noisiest level down; the last
    pair ends at sigma(t = 0)."""
    table = ldm_table(den, linear_start, linear_end)
    T = table.numel()
    c = T // int(steps)
    if c < 1:
        raise ValueError(f"LDM DDIM: steps must be <= {T}, got {steps}")
    ts = torch.arange(0, T, c) + 1
    if int(ts[-1]) == ts.numel():          # c = 1: t = 1 .. T would index past the table
        ts = ts - 1
    ts = ts[ts < T]
    cur = table[ts]
    prev = torch.cat([table[:1], table[ts[:-1]]])
    return [(float(a), float(b)) for a, b in zip(cur.flip(0), prev.flip(0))]
